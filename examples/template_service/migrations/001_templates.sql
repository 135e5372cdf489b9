-- Templates (drafts are edited in place) and their immutable published versions.
CREATE TABLE IF NOT EXISTS templates (
    id                text PRIMARY KEY,
    name              text        NOT NULL,
    description       text        NOT NULL DEFAULT '',
    category          text        NOT NULL,
    tags              text[]      NOT NULL DEFAULT '{}',
    status            text        NOT NULL DEFAULT 'draft',
    version           integer     NOT NULL DEFAULT 0,
    fields            jsonb       NOT NULL DEFAULT '[]'::jsonb,
    cross_field_rules jsonb       NOT NULL DEFAULT '[]'::jsonb,
    created_by        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_by        text,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS templates_listing ON templates (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS templates_tags ON templates USING gin (tags);

CREATE TABLE IF NOT EXISTS template_versions (
    template_id  text        NOT NULL REFERENCES templates (id),
    version      integer     NOT NULL,
    snapshot     jsonb       NOT NULL,
    published_by text,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (template_id, version)
);
