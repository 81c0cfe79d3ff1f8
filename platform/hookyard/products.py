"""Products: added by hand (API, UI) or created by the first event that names them."""
from __future__ import annotations

from marshmallow import ValidationError
from sqlalchemy import func, select
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
    exists = session.scalar(select(Product.id).where(Product.marketplace_id == marketplace_id,
                                                     Product.external_id == external_id))
    if exists is not None:
        raise ProductExists(external_id, exists)
    product = Product(marketplace_id=marketplace_id, external_id=external_id, name=name, auto_created=False)
    session.add(product)
    session.flush()
    return product
