-- Runs once, when the compose PostgreSQL starts with an empty data directory:
-- the captured table in database "app" and the destination database "replica".
CREATE TABLE orders (
    id       bigserial PRIMARY KEY,
    customer text NOT NULL,
    amount   numeric(12, 2) NOT NULL,
    status   text NOT NULL DEFAULT 'new',
    created  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO orders (customer, amount)
SELECT 'c' || g % 100, (g * 7 % 1000)::numeric / 10 FROM generate_series(1, 1000) g;
CREATE DATABASE replica;
