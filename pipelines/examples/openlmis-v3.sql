-- An OpenLMIS v3-like destination schema: other schemas, table and column
-- names than eLMIS v2. The example pipelines in this directory fill it.
-- There are no foreign keys between the tables: each pipeline applies its
-- table on its own, so a line item may arrive before its requisition.
CREATE SCHEMA referencedata;
CREATE SCHEMA requisition;
CREATE TABLE referencedata.facilities (id integer PRIMARY KEY, code text NOT NULL, name text NOT NULL, enabled boolean NOT NULL);
CREATE TABLE referencedata.programs (id integer PRIMARY KEY, code text NOT NULL, name text NOT NULL);
CREATE TABLE referencedata.orderables (id integer PRIMARY KEY, productcode text NOT NULL, fullproductname text NOT NULL,
  dispensable text, netcontent integer NOT NULL);
CREATE TABLE requisition.requisitions (id integer PRIMARY KEY, facility_id integer NOT NULL, program_id integer NOT NULL,
  status text NOT NULL, emergency boolean NOT NULL, created_date timestamptz NOT NULL, modified_date timestamptz);
CREATE TABLE requisition.requisition_line_items (id integer PRIMARY KEY, requisition_id integer NOT NULL, orderable_id integer NOT NULL,
  requested_quantity integer, approved_quantity integer, total_cost numeric(15,4));
