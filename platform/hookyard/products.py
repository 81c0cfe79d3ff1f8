"""Products: added by hand (API, UI) or created by the first event that names them."""

from __future__ import annotations

from marshmallow import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import Product


class ProductExists(ValidationError):
    def __init__(self, external_id: str, existing_id: int):
        super().__init__({"external_id": ["Already exists."]})
        self.message = f"product with external_id {external_id!r} already exists (id {existing_id})"


def search(marketplace_id: int, text: str | None):
    query = select(Product).where(Product.marketplace_id == marketplace_id)
    if text:
        like = f"%{text.strip().lower()}%"
        query = query.where(func.lower(Product.name).like(like) | func.lower(Product.external_id).like(like))
    return query


def create(session: Session, marketplace_id: int, external_id: str, name: str) -> Product:
    external_id = external_id.strip()
    exists = session.scalar(
        select(Product.id).where(Product.marketplace_id == marketplace_id, Product.external_id == external_id)
    )
    if exists is not None:
        raise ProductExists(external_id, exists)
    product = Product(marketplace_id=marketplace_id, external_id=external_id, name=name, auto_created=False)
    session.add(product)
    session.flush()
    return product


def upsert(session: Session, marketplace_id: int, items) -> tuple[int, int]:
    """Products imported from the store ({"id", "name"}), matched by external id: new ones are added, known ones
    take the store's name. Returns (added, renamed); the caller commits. Safe to run again: nothing is doubled."""
    wanted: dict[str, str] = {}
    for item in items:
        external_id = str(item.get("id") or "").strip()[:200]
        if external_id:
            wanted[external_id] = str(item.get("name") or "")[:500]
    if not wanted:
        return 0, 0
    known = {
        p.external_id: p
        for p in session.scalars(
            select(Product).where(Product.marketplace_id == marketplace_id, Product.external_id.in_(list(wanted)))
        )
    }
    added = renamed = 0
    for external_id, name in wanted.items():
        product = known.get(external_id)
        if product is None:
            try:
                with session.begin_nested():
                    session.add(
                        Product(marketplace_id=marketplace_id, external_id=external_id, name=name, auto_created=False)
                    )
                added += 1
                continue
            except IntegrityError:  # a first sale of it created it meanwhile: rename that one
                product = session.scalar(
                    select(Product).where(Product.marketplace_id == marketplace_id, Product.external_id == external_id)
                )
        if name and product.name != name:
            product.name = name
            renamed += 1
    session.flush()
    return added, renamed
