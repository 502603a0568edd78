# Shortcuts; the scripts are the source of truth (they need nothing but bash, python3, apt, pip).
.PHONY: demo test proto lint
demo:
	bash scripts/demo.sh
test:
	bash scripts/test.sh
proto:
	.venv/bin/python scripts/protogen.py
lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy
