-- The shop's catalogue. Runs once per namespace, as the namespace's role, in its own schema.
CREATE TABLE items (
    sku        text PRIMARY KEY CHECK (sku ~ '^[a-z0-9-]{1,32}$'),
    name       text NOT NULL,
    price      numeric(10, 2) NOT NULL CHECK (price >= 0),
    stock      integer NOT NULL DEFAULT 0 CONSTRAINT stock_not_negative CHECK (stock >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
