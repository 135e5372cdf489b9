-- Idempotency-Key responses now live in the kit's table (tracseq_idempotency).
DROP TABLE IF EXISTS idempotency_keys;
