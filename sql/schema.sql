-- docchat schema, version 0.1.0. Tables live in schema docchat; the SQL API (docchat_*)
-- lives in the extension's schema so PostgREST exposes it as /rpc/docchat_*.
CREATE SCHEMA IF NOT EXISTS docchat;

-- The caller's identity: the JWT subject when PostgREST/Supabase set request.jwt.claims,
-- else the database role.
CREATE FUNCTION docchat.current_owner() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', current_user::text)
$$;

CREATE TABLE docchat.documents (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner       text NOT NULL DEFAULT docchat.current_owner(),
    filename    text,
    mime_type   text NOT NULL,
    size        bigint NOT NULL CHECK (size >= 0),
    sha256      bytea NOT NULL,
    status      text NOT NULL DEFAULT 'ready' CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
    metadata    jsonb NOT NULL DEFAULT '{}',
    n_chunks    integer NOT NULL DEFAULT 0,
    n_chars     integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX documents_owner_created_idx ON docchat.documents (owner, created_at DESC);

-- owner is repeated from the document so that search filters chunks without a join and
-- chunks can later be distributed or partitioned by owner.
CREATE TABLE docchat.chunks (
    document_id uuid NOT NULL REFERENCES docchat.documents (id) ON DELETE CASCADE,
    chunk_index integer NOT NULL,
    owner       text NOT NULL DEFAULT docchat.current_owner(),
    content     text NOT NULL,
    char_start  integer NOT NULL,
    char_end    integer NOT NULL,
    page        integer,
    n_tokens    integer NOT NULL,
    heading     text,
    embedding   vector(384) NOT NULL,
    PRIMARY KEY (document_id, chunk_index)
);
CREATE INDEX chunks_embedding_idx ON docchat.chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX chunks_owner_idx ON docchat.chunks (owner);

CREATE TABLE docchat.searches (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner       text NOT NULL DEFAULT docchat.current_owner(),
    query       text NOT NULL,
    n_results   integer NOT NULL,
    duration    interval NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX searches_owner_created_idx ON docchat.searches (owner, created_at DESC);

-- Row-level security: every role sees and writes only its own rows. The owner expression
-- is wrapped in a sub-select so it is evaluated once per statement, not once per row.
ALTER TABLE docchat.documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE docchat.documents FORCE ROW LEVEL SECURITY;
ALTER TABLE docchat.chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE docchat.chunks FORCE ROW LEVEL SECURITY;
ALTER TABLE docchat.searches ENABLE ROW LEVEL SECURITY;
ALTER TABLE docchat.searches FORCE ROW LEVEL SECURITY;
CREATE POLICY documents_owner ON docchat.documents
    USING (owner = (SELECT docchat.current_owner())) WITH CHECK (owner = (SELECT docchat.current_owner()));
CREATE POLICY chunks_owner ON docchat.chunks
    USING (owner = (SELECT docchat.current_owner())) WITH CHECK (owner = (SELECT docchat.current_owner()));
CREATE POLICY searches_owner ON docchat.searches
    USING (owner = (SELECT docchat.current_owner())) WITH CHECK (owner = (SELECT docchat.current_owner()));
