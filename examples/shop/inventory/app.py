"""The inventory module: the shop's catalogue in PostgreSQL (`wr_sdk.db`) and product images in
the blobstore (`wr_sdk.blobstore`). Its tables come from migrations/ (run by `wrctl apply`).

Routes (JSON in, JSON out):
  POST /items/add      {"sku", "name", "price", "stock"}  -> the item
  POST /items/get      {"sku"}                            -> the item, 404 if unknown
  POST /items/list     {}                                 -> {"items": [...]}
  POST /items/reserve  {"sku", "quantity"}                -> {"sku", "stock"} (409: not enough)
  POST /items/image?sku=SKU   body: the image bytes       -> {"sku", "key", "bytes"}
  POST /items/image/get {"sku"}                           -> the image bytes

Job (fired by the `low-stock-report` schedule of cluster.toml, or `wrctl jobs submit`):
  low-stock  {"below": N}  -> writes reports/low-stock.json to the bucket, returns its summary
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from wr_sdk import HttpError, Job, Module, Request, blobstore, db

app = Module()
BUCKET = "shop-images"
COLUMNS = "sku, name, price, stock, image_key"


def _item(row: Any) -> dict[str, Any]:
    return {
        "sku": row["sku"],
        "name": row["name"],
        "price": str(row["price"]),
        "stock": row["stock"],
        "image": row["image_key"],
    }


def _sku(request: Request) -> str:
    sku = request.json().get("sku") if request.body else None
    if not isinstance(sku, str) or not sku:
        raise HttpError(400, 'expected a JSON body with "sku"')
    return sku


@app.route("/items/add")
def add(request: Request) -> dict[str, Any]:
    item = request.json()
    try:
        rows = db.query(
            f"INSERT INTO items (sku, name, price, stock) VALUES ($1, $2, $3::numeric, $4)"
            f" RETURNING {COLUMNS}",
            [item["sku"], item["name"], Decimal(str(item["price"])), int(item.get("stock", 0))],
        )
    except db.ConstraintViolation as exc:
        raise HttpError(409, f"item {item['sku']!r} refused ({exc.constraint})") from None
    return _item(rows[0])


@app.route("/items/get")
def get(request: Request) -> dict[str, Any]:
    sku = _sku(request)
    rows = db.query(f"SELECT {COLUMNS} FROM items WHERE sku = $1", [sku])
    if not rows:
        raise HttpError(404, f"no item {sku!r}")
    return _item(rows[0])


@app.route("/items/list")
def list_items(request: Request) -> dict[str, Any]:
    return {"items": [_item(r) for r in db.query(f"SELECT {COLUMNS} FROM items ORDER BY sku")]}


@app.route("/items/reserve")
def reserve(request: Request) -> dict[str, Any]:
    """Take `quantity` out of stock in one transaction (the row is locked meanwhile)."""
    sku, quantity = _sku(request), int(request.json().get("quantity", 1))
    with db.transaction() as tx:
        rows = tx.query("SELECT stock FROM items WHERE sku = $1 FOR UPDATE", [sku])
        if not rows:
            raise HttpError(404, f"no item {sku!r}")
        if rows[0]["stock"] < quantity:
            raise HttpError(409, f"only {rows[0]['stock']} of {sku!r} left")
        stock = tx.query(
            "UPDATE items SET stock = stock - $2 WHERE sku = $1 RETURNING stock",
            [sku, db.Int4(quantity)],
        )[0]["stock"]
    return {"sku": sku, "stock": stock}


@app.route("/items/image")
def put_image(request: Request) -> dict[str, Any]:
    sku = parse_qs(urlsplit(request.path).query).get("sku", [""])[0]
    if not sku or not request.body:
        raise HttpError(400, "expected ?sku=SKU and the image as the body")
    key = f"items/{sku}"
    blobstore.put(BUCKET, key, request.body)
    if db.execute("UPDATE items SET image_key = $2 WHERE sku = $1", [sku, key]) == 0:
        blobstore.delete(BUCKET, key)
        raise HttpError(404, f"no item {sku!r}")
    return {"sku": sku, "key": key, "bytes": len(request.body)}


@app.route("/items/image/get")
def get_image(request: Request) -> bytes:
    sku = _sku(request)
    try:
        return blobstore.get(BUCKET, f"items/{sku}")
    except blobstore.NotFound:
        raise HttpError(404, f"no image for {sku!r}") from None


@app.job("low-stock")
def low_stock(job: Job) -> dict[str, Any]:
    """The items whose stock is below the payload's `below`, as a JSON report in the bucket.
    Jobs run at least once: writing the same report again is harmless."""
    below = int(job.json().get("below", 5)) if job.payload else 5
    rows = db.query(
        f"SELECT {COLUMNS} FROM items WHERE stock < $1 ORDER BY stock, sku", [db.Int4(below)]
    )
    report = {"below": below, "items": [_item(r) for r in rows]}
    blobstore.put(BUCKET, "reports/low-stock.json", json.dumps(report).encode())
    return {"below": below, "count": len(rows)}
