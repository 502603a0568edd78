"""wr-engine: the wasmtime host that runs wruntime modules (front process + worker pool)."""
