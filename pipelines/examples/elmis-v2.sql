-- A small eLMIS v2-like source schema with seed data, used by `sluice demo`
-- and the example pipelines in this directory.
CREATE TABLE facilities (id serial PRIMARY KEY, code text NOT NULL UNIQUE, name text NOT NULL, active boolean NOT NULL DEFAULT true,
  attributes jsonb);
CREATE TABLE programs (id serial PRIMARY KEY, code text NOT NULL UNIQUE, name text NOT NULL);
CREATE TABLE products (id serial PRIMARY KEY, code text NOT NULL UNIQUE, primaryname text NOT NULL, dispensingunit text, packsize int NOT NULL);
CREATE TABLE requisitions (id serial PRIMARY KEY, facilityid int NOT NULL REFERENCES facilities, programid int NOT NULL REFERENCES programs,
  status text NOT NULL DEFAULT 'INITIATED', emergency boolean NOT NULL DEFAULT false, createddate timestamptz NOT NULL DEFAULT now(), modifieddate timestamptz);
CREATE TABLE requisition_line_items (id serial PRIMARY KEY, rnrid int NOT NULL REFERENCES requisitions ON DELETE CASCADE, productid int NOT NULL REFERENCES products,
  quantityrequested int, quantityapproved int, totalcost numeric(15,4), remarks text);
INSERT INTO facilities (code, name, active, attributes) SELECT 'F' || g, 'Health facility ' || g, g % 9 <> 0,
  CASE WHEN g % 7 <> 0 THEN jsonb_build_object('type', (ARRAY['HC', 'HP', 'DH'])[1 + g % 3],
    'operator', jsonb_build_object('code', CASE WHEN g % 5 = 0 THEN 'ngo' ELSE 'moh' END)) END
  FROM generate_series(1, 20) g;
INSERT INTO programs (code, name) VALUES ('ARV', 'Antiretroviral'), ('TB', 'Tuberculosis'), ('MAL', 'Malaria'), ('FP', 'Family planning');
INSERT INTO products (code, primaryname, dispensingunit, packsize) SELECT 'P' || g, 'Product ' || g,
  (ARRAY['tablet', 'bottle', 'vial', NULL])[1 + g % 4], 10 * g FROM generate_series(1, 50) g;
INSERT INTO requisitions (facilityid, programid, status) SELECT 1 + g % 20, 1 + g % 4, (ARRAY['INITIATED','SUBMITTED','AUTHORIZED','APPROVED'])[1 + g % 4] FROM generate_series(1, 100) g;
INSERT INTO requisition_line_items (rnrid, productid, quantityrequested, totalcost) SELECT 1 + g % 100, 1 + g % 50, g % 500, (g % 500) * 1.25 FROM generate_series(1, 500) g;
