-- Routing policies: immutable versions of a named document, and the one active version.

CREATE TABLE policies (
    name            TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    version         INTEGER NOT NULL CHECK (version >= 1),
    document        TEXT NOT NULL,               -- canonical JSON, every default written out
    hash            TEXT NOT NULL CHECK (length(hash) = 64),   -- hex SHA-256 of document
    created_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;

CREATE TABLE active_policy (
    singleton       INTEGER PRIMARY KEY CHECK (singleton = 1),
    name            TEXT NOT NULL,
    version         INTEGER NOT NULL,
    activated_at_ms INTEGER NOT NULL,
    FOREIGN KEY (name, version) REFERENCES policies (name, version)
) STRICT;
