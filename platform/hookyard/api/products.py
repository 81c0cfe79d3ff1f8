"""Products: the store's products by their external id; rules can target one."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import fields, validate

from .. import products as product_service
from ..models import Product
from .auth import api_blueprint
from .base import BaseSchema, marketplace_id, owned, page_of, session

blp = api_blueprint("products", "Store products")


class StrippedString(fields.String):
    """Validated as stored: the product service strips the external id, so " " must be refused as empty."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


class ProductSchema(BaseSchema):
    id = fields.Integer(dump_only=True, metadata={"description": "Hookyard's id, used by rules."})
    external_id = StrippedString(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={
            "description": "The store's product id (payload.product.id); surrounding whitespace is removed.",
            # Documented as validated: not only whitespace (stripped, it is empty),
            # and no NUL (TEXT_PATTERN, which this pattern replaces).
            "pattern": r"^[^\x00]*[^\s\x00][^\x00]*$",
        },
    )
    name = fields.String(load_default="", validate=validate.Length(max=500))
    auto_created = fields.Boolean(dump_only=True, metadata={"description": "Created by the first event naming it."})
    created_at = fields.DateTime(dump_only=True)


class ProductPatchSchema(BaseSchema):
    name = fields.String(required=True, validate=validate.Length(max=500))


class ProductQuerySchema(BaseSchema):
    q = fields.String(metadata={"description": "Search the external id and the name."})


@blp.route("")
class Products(MethodView):
    @blp.arguments(ProductQuerySchema, location="query")
    @blp.response(200, ProductSchema(many=True))
    @blp.paginate()
    def get(self, args, pagination_parameters):
        """List products"""
        query = product_service.search(marketplace_id(), args.get("q"))
        return page_of(query, pagination_parameters, Product.id)

    @blp.arguments(ProductSchema)
    @blp.response(201, ProductSchema)
    @blp.alt_response(409, response="CONFLICT", description="A product with this external_id exists.")
    def post(self, body):
        """Add a product before its first sale"""
        try:
            product = product_service.create(session(), marketplace_id(), body["external_id"], body["name"])
        except product_service.ProductExists as exc:
            abort(409, message=exc.message, errors={"json": exc.messages})
        session().commit()
        return product


@blp.route("/<int:product_id>")
class ProductById(MethodView):
    @blp.response(200, ProductSchema)
    def get(self, product_id):
        """Show a product"""
        return owned(Product, product_id)

    @blp.arguments(ProductPatchSchema)
    @blp.response(200, ProductSchema)
    def patch(self, body, product_id):
        """Rename a product"""
        product = owned(Product, product_id)
        product.name = body["name"]
        session().commit()
        return product

    @blp.response(204)
    def delete(self, product_id):
        """Delete a product and its product-level rules (the log keeps its entries)"""
        session().delete(owned(Product, product_id))
        session().commit()
