-- People (they log in through the device page) and robot clients (client credentials).
-- Passwords are Argon2id hashes; client secrets, refresh tokens and device codes are
-- SHA-256 digests of 256-bit random secrets. Nothing here can be used as a credential.
CREATE TABLE IF NOT EXISTS auth_users (
    username            text        PRIMARY KEY,
    password_hash       text        NOT NULL,
    scopes              text[]      NOT NULL DEFAULT '{}',
    disabled            boolean     NOT NULL DEFAULT false,
    created_by          text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    password_changed_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS auth_clients (
    client_id         text        PRIMARY KEY,
    description       text        NOT NULL DEFAULT '',
    secret_digest     text        NOT NULL,
    scopes            text[]      NOT NULL DEFAULT '{}',
    disabled          boolean     NOT NULL DEFAULT false,
    created_by        text,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    secret_rotated_at timestamptz NOT NULL
);

-- Signing keys: the private key is a Fernet token (encrypted with the key encryption
-- key from the settings). Exactly one key signs (retired_at IS NULL); a retired key is
-- published until published_until, when every token it signed has expired.
CREATE TABLE IF NOT EXISTS auth_signing_keys (
    kid             text        PRIMARY KEY,
    algorithm       text        NOT NULL,
    public_jwk      jsonb       NOT NULL,
    private_key     bytea       NOT NULL,
    created_at      timestamptz NOT NULL,
    retired_at      timestamptz,
    published_until timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS auth_signing_keys_one_active
    ON auth_signing_keys ((true)) WHERE retired_at IS NULL;

-- Device logins (RFC 8628) waiting for, or given, a person's approval.
CREATE TABLE IF NOT EXISTS auth_device_codes (
    device_digest  text        PRIMARY KEY,
    user_code      text        NOT NULL UNIQUE,
    client_id      text        NOT NULL,
    scopes         text[],
    status         text        NOT NULL DEFAULT 'pending',
    username       text,
    granted_scopes text[],
    interval       integer     NOT NULL,
    last_polled_at timestamptz,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_device_codes_expiry ON auth_device_codes (expires_at);

-- Refresh tokens of device logins: each use rotates the token within its family; a
-- rotated token used again revokes the whole family (it was stolen, or replayed).
CREATE TABLE IF NOT EXISTS auth_refresh_tokens (
    token_digest text        PRIMARY KEY,
    family       text        NOT NULL,
    username     text        NOT NULL REFERENCES auth_users (username),
    client_id    text        NOT NULL,
    scopes       text[]      NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    rotated_at   timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX IF NOT EXISTS auth_refresh_tokens_family ON auth_refresh_tokens (family);
CREATE INDEX IF NOT EXISTS auth_refresh_tokens_user ON auth_refresh_tokens (username);
CREATE INDEX IF NOT EXISTS auth_refresh_tokens_expiry ON auth_refresh_tokens (expires_at);
