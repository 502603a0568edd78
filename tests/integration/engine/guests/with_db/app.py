"""A guest built with the db capability in its world (the engine must refuse it without a grant)."""

from wr_sdk import Module

app = Module()


@app.route("/")
def index(request: object) -> str:
    return "never served"
