-- Request-signing secrets (portcullis-store, SQLite).
-- A key that signs requests holds its signing secret sealed under the key-encryption key (KEK),
-- which lives in the environment, never here: a 12-byte nonce, then the ChaCha20-Poly1305
-- ciphertext and its 16-byte tag. NULL for a key that does not sign.

ALTER TABLE api_keys ADD COLUMN signing_secret BLOB
    CHECK (signing_secret IS NULL OR length(signing_secret) >= 28);
