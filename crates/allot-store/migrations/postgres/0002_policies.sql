-- Routing policies: immutable versions of a named document, and the one active version.

CREATE TABLE policies (
    name            TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    version         BIGINT NOT NULL CHECK (version >= 1),
    document        TEXT NOT NULL,
    hash            TEXT NOT NULL CHECK (length(hash) = 64),
    created_at_ms   BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE active_policy (
    singleton       BIGINT PRIMARY KEY CHECK (singleton = 1),
    name            TEXT NOT NULL,
    version         BIGINT NOT NULL,
    activated_at_ms BIGINT NOT NULL,
    FOREIGN KEY (name, version) REFERENCES policies (name, version)
);
