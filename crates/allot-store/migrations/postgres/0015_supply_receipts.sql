-- Receipts of inbound supply: a supply may arrive in several receipts; each is a row, and
-- a receipt naming the client's own reference (an ASN or goods-received note number) is
-- taken once, so a retried receipt adds nothing.
CREATE TABLE supply_receipts (
    supply_id       TEXT NOT NULL REFERENCES inbound_supply (supply_id),
    receipt_no      BIGINT NOT NULL CHECK (receipt_no >= 1),
    reference       TEXT,
    quantity        BIGINT NOT NULL CHECK (quantity BETWEEN 1 AND 1000000000),
    received_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (supply_id, receipt_no)
);
CREATE UNIQUE INDEX supply_receipts_by_reference ON supply_receipts (supply_id, reference) WHERE reference IS NOT NULL;
