"""Products: the list (auto-created ones included), adding one by id and name, and each product's
Integrations tab with its rules."""

from __future__ import annotations

from flask import render_template, request
from sqlalchemy import func, select

from hookyard import products as product_service
from hookyard import rules as rule_service
from hookyard.models import Product, Rule
from hookyard.requestctx import db_session as db
from hookyard.requestctx import owned
from hookyard.requestctx import store_id as marketplace_id

from .blueprint import bp, done, owner_only
from .forms import flat_errors, present
from .labels import rule_rows


def _list(errors=None, values=None, status=200):
    q = request.args.get("q", "").strip()
    products = list(
        db().scalars(product_service.search(marketplace_id(), q).order_by(Product.name, Product.id).limit(500))
    )
    counts = dict(
        db()
        .execute(
            select(Rule.product_id, func.count())
            .where(Rule.marketplace_id == marketplace_id(), Rule.product_id.is_not(None))
            .group_by(Rule.product_id)
        )
        .all()
    )
    return render_template(
        "products.html", products=products, counts=counts, q=q, errors=errors or {}, values=values or {}
    ), status


@bp.route("/products")
def products():
    return _list()


@bp.route("/products", methods=["POST"])
@owner_only
def add_product():
    values = present(request.form, ("external_id", "name"))
    if not values.get("external_id"):
        return _list({"external_id": "Enter the product's id in your store."}, values, 422)
    try:
        product = product_service.create(db(), marketplace_id(), values["external_id"], values.get("name", ""))
    except product_service.ProductExists as exc:
        db().rollback()
        return _list({**flat_errors(exc.messages), "external_id": exc.message}, values, 409)
    db().commit()
    return done(f"Product “{product.name or product.external_id}” added.", "web.product", {"product_id": product.id})


@bp.route("/products/<int:product_id>")
def product(product_id):
    item = owned(Product, product_id)
    rules = list(db().scalars(rule_service.listing(marketplace_id(), {"product_id": item.id})))
    return render_template("product.html", product=item, rows=rule_rows(rules))
