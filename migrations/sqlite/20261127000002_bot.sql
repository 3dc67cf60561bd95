-- The bot: per-site configuration, the site's own QA pairs, questions it could not answer,
-- bot suggestions on messages, and contact details visitors leave when nobody is online.

-- JSON: enabled, name, engine, threshold, welcome, handoff words, packs, engine endpoints.
ALTER TABLE sites ADD COLUMN bot TEXT NOT NULL DEFAULT '{}';

-- JSON array of quick-reply suggestions, and JSON rendering hints (MessageMeta).
ALTER TABLE messages ADD COLUMN quick_replies TEXT;
ALTER TABLE messages ADD COLUMN meta TEXT;

ALTER TABLE visitors ADD COLUMN phone TEXT;
ALTER TABLE visitors ADD COLUMN note TEXT;

CREATE TABLE qa_pairs (
    id            TEXT PRIMARY KEY,
    site_id       TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    lang          TEXT NOT NULL,
    questions     TEXT NOT NULL,              -- JSON array
    answer        TEXT NOT NULL,
    quick_replies TEXT NOT NULL DEFAULT '[]', -- JSON array
    handoff       INTEGER NOT NULL DEFAULT 0,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX qa_pairs_site ON qa_pairs (site_id, updated_at);

CREATE TABLE bot_unanswered (
    id              TEXT PRIMARY KEY,
    site_id         TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    conversation_id TEXT,
    question        TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX bot_unanswered_site ON bot_unanswered (site_id, created_at);
