"""The client module: one request that walks the whole shop, for `wrctl invoke shop.client/demo`.
It stocks an item, uploads its image, reads both back, reserves some, and asks the assistant."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from wr_sdk import HttpError, Module, Request, call

app = Module()
IMAGE = bytes(range(256)) * 4096  # a 1 MiB "image"


def _post(url: str, body: object | bytes) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = call(url, data)
    if not reply.ok:
        raise HttpError(502, f"{url} answered {reply.status}: {reply.text()[:200]}")
    return reply


@app.route("/demo")
def demo(request: Request) -> dict[str, Any]:
    sku = (request.json().get("sku") if request.body else None) or "mug"
    added = _post(
        "http://shop.inventory/items/add",
        {"sku": sku, "name": "Blue mug", "price": "12.50", "stock": 10},
    ).json()
    _post(f"http://shop.inventory/items/image?sku={sku}", IMAGE)
    image = _post("http://shop.inventory/items/image/get", {"sku": sku}).body
    reserved = _post("http://shop.inventory/items/reserve", {"sku": sku, "quantity": 3}).json()
    answer = _post("http://shop.assistant/ask", {"question": f"How much is {sku}?"}).json()
    return {
        "added": added,
        "image_sha256_matches": hashlib.sha256(image).digest() == hashlib.sha256(IMAGE).digest(),
        "stock_after_reserve": reserved["stock"],
        "assistant": answer,
    }
