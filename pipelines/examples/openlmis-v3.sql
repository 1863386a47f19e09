-- An OpenLMIS v3-like destination schema: other schemas, table and column
-- names and types than eLMIS v2. Rows are identified by UUIDs, which the
-- example pipelines derive from the eLMIS ids with uuid5 (so references
-- between tables agree without lookups). The example pipelines in this
-- directory fill it. There are no foreign keys between the tables: each
-- pipeline applies its tables on its own, so a line item may arrive before
-- its requisition.
CREATE SCHEMA referencedata;
CREATE SCHEMA requisition;
CREATE TABLE referencedata.facilities (id uuid PRIMARY KEY, code text NOT NULL, name text NOT NULL, enabled boolean NOT NULL,
  type_code text, operator_code text);
CREATE TABLE referencedata.programs (id uuid PRIMARY KEY, code text NOT NULL, name text NOT NULL, active boolean NOT NULL);
CREATE TABLE referencedata.dispensables (id uuid PRIMARY KEY, dispensingunit text NOT NULL);
CREATE TABLE referencedata.orderables (id uuid PRIMARY KEY, productcode text NOT NULL, fullproductname text NOT NULL,
  dispensableid uuid, netcontent bigint NOT NULL);
CREATE TABLE requisition.requisitions (id uuid PRIMARY KEY, facility_id uuid NOT NULL, program_id uuid NOT NULL,
  status text NOT NULL CHECK (status IN ('INITIATED', 'REJECTED', 'SUBMITTED', 'AUTHORIZED', 'IN_APPROVAL', 'APPROVED',
    'RELEASED', 'RELEASED_WITHOUT_ORDER', 'SKIPPED')),
  emergency boolean NOT NULL, created_date timestamptz NOT NULL, modified_date timestamptz);
CREATE TABLE requisition.requisition_line_items (id uuid PRIMARY KEY, requisition_id uuid NOT NULL, orderable_id uuid NOT NULL,
  requested_quantity integer, approved_quantity integer, total_cost numeric(15,4), skipped boolean NOT NULL);
