-- Product images live in the blobstore; the row keeps the object's key.
ALTER TABLE items ADD COLUMN image_key text;
