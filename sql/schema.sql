-- docchat schema. Tables live in schema docchat; the SQL API (docchat_*)
-- lives in the extension's schema so PostgREST exposes it as /rpc/docchat_*.
CREATE SCHEMA IF NOT EXISTS docchat;

-- The caller's identity (src/api/owner.rs): the session's role, or `jwt:<sub>` for the roles
-- listed in docchat.jwt_roles. Definer-rights functions still see the caller.
CREATE FUNCTION docchat.current_owner() RETURNS text
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'current_owner_wrapper';

-- The embedding models. dir holds model.onnx and tokenizer.json; a relative dir is under
-- docchat.models_dir ($sharedir/docchat/models). Registering a model creates its HNSW index.
CREATE TABLE docchat.models (
    name            text PRIMARY KEY,
    dimension       integer NOT NULL CHECK (dimension BETWEEN 1 AND 16000),
    max_seq_length  integer NOT NULL CHECK (max_seq_length BETWEEN 3 AND 8192),
    pooling         text NOT NULL DEFAULT 'mean' CHECK (pooling = 'mean'),
    dir             text NOT NULL,
    is_default      boolean NOT NULL DEFAULT false,
    description     text
);
CREATE UNIQUE INDEX models_one_default_idx ON docchat.models (is_default) WHERE is_default;

-- Chunks of every model share one table; each model has a partial HNSW index over its rows,
-- on the embedding cast to its dimension (searches use the same expression).
CREATE FUNCTION docchat.create_model_index() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, @extschema:vector@, pg_temp
AS $$
BEGIN
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON docchat.chunks USING hnsw ((embedding::vector(%s)) vector_cosine_ops) WHERE model = %L',
                   'chunks_hnsw_' || left(regexp_replace(lower(NEW.name), '[^a-z0-9]+', '_', 'g'), 40), NEW.dimension, NEW.name);
    RETURN NEW;
END
$$;

-- The model a call uses: the one it names, else docchat.model, else the default row.
CREATE FUNCTION docchat.model_for(requested text) RETURNS docchat.models
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
    wanted text := coalesce(requested, nullif(btrim(current_setting('docchat.model', true)), ''));
    m docchat.models;
BEGIN
    IF wanted IS NULL THEN
        SELECT * INTO m FROM docchat.models WHERE is_default;
    ELSE
        SELECT * INTO m FROM docchat.models WHERE name = wanted;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown embedding model "%"', coalesce(wanted, '(no default model)')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'registered models: ' || coalesce((SELECT string_agg(name, ', ' ORDER BY name) FROM docchat.models), 'none');
    END IF;
    RETURN m;
END
$$;

-- Full text: each document's language picks a text search configuration (stemming, stop words);
-- 'simple' when the language is unknown. Names are stored schema-qualified as text (pg_upgrade
-- refuses regconfig columns), which also makes to_fts safe to call immutable.
CREATE FUNCTION docchat.text_search_config(language text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT coalesce(
    (SELECT format('%I.%I', 'pg_catalog', c.cfgname)
     FROM pg_catalog.pg_ts_config c
     WHERE c.cfgnamespace = 'pg_catalog'::regnamespace
       AND c.cfgname = coalesce(
         -- ISO 639-1 or 639-3 codes, as the language detection and document metadata spell them
         (SELECT l.cfg FROM (VALUES ('ar', 'ara', 'arabic'), ('hy', 'hye', 'armenian'), ('eu', 'eus', 'basque'),
                  ('ca', 'cat', 'catalan'), ('da', 'dan', 'danish'), ('nl', 'nld', 'dutch'), ('en', 'eng', 'english'),
                  ('fi', 'fin', 'finnish'), ('fr', 'fra', 'french'), ('de', 'deu', 'german'), ('el', 'ell', 'greek'),
                  ('hi', 'hin', 'hindi'), ('hu', 'hun', 'hungarian'), ('id', 'ind', 'indonesian'), ('ga', 'gle', 'irish'),
                  ('it', 'ita', 'italian'), ('lt', 'lit', 'lithuanian'), ('ne', 'nep', 'nepali'), ('nb', 'nob', 'norwegian'),
                  ('nn', 'nno', 'norwegian'), ('no', 'nor', 'norwegian'), ('pt', 'por', 'portuguese'),
                  ('ro', 'ron', 'romanian'), ('ru', 'rus', 'russian'), ('sr', 'srp', 'serbian'), ('es', 'spa', 'spanish'),
                  ('sv', 'swe', 'swedish'), ('ta', 'tam', 'tamil'), ('tr', 'tur', 'turkish'), ('yi', 'yid', 'yiddish'))
                  l(two, three, cfg)
          WHERE lower(split_part(replace(language, '_', '-'), '-', 1)) IN (l.two, l.three)),
         lower(language))),
    'pg_catalog.simple')
$$;

CREATE FUNCTION docchat.to_fts(config text, content text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.to_tsvector(config::pg_catalog.regconfig, content);

CREATE TABLE docchat.documents (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner       text NOT NULL DEFAULT docchat.current_owner(),
    filename    text,
    mime_type   text NOT NULL,
    size        bigint NOT NULL CHECK (size >= 0),
    sha256      bytea NOT NULL,
    status      text NOT NULL DEFAULT 'ready' CHECK (status IN ('queued', 'parsing', 'embedding', 'ready', 'failed')),
    metadata    jsonb NOT NULL DEFAULT '{}',
    n_chunks    integer NOT NULL DEFAULT 0,
    n_chars     integer NOT NULL DEFAULT 0,
    model       text NOT NULL REFERENCES docchat.models (name),
    ts_config   text NOT NULL DEFAULT 'pg_catalog.simple'  -- text search configuration, built-in only
                CHECK (ts_config LIKE 'pg_catalog.%'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    ingested_at timestamptz DEFAULT now()  -- when it became ready (NULL while queued)
);
CREATE INDEX documents_owner_created_idx ON docchat.documents (owner, created_at DESC);
CREATE INDEX documents_owner_sha256_idx ON docchat.documents (owner, sha256);

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
    model       text NOT NULL REFERENCES docchat.models (name),
    embedding   vector NOT NULL,
    ts_config   text NOT NULL DEFAULT 'pg_catalog.simple' CHECK (ts_config LIKE 'pg_catalog.%'),  -- the document's
    fts         tsvector GENERATED ALWAYS AS (docchat.to_fts(ts_config, content)) STORED,
    PRIMARY KEY (document_id, chunk_index)
) WITH (toast_tuple_target = 4080);
-- toast_tuple_target: a row up to 4 KB keeps its vector inline. Above the default 2 KB (a row of
-- three sentences and a 384-dimensional vector is 2.8 KB) Postgres moves the vector to TOAST,
-- and semantic search over a 10,000-chunk owner (an exact scan, which reads every vector) took
-- 2.7x as long (bench/RESULTS.md).
-- The embedding cache: a text this owner already has embedded with this model is not embedded again.
CREATE INDEX chunks_owner_model_text_idx ON docchat.chunks (owner, model, md5(content));
CREATE INDEX chunks_owner_idx ON docchat.chunks (owner);
CREATE INDEX chunks_fts_idx ON docchat.chunks USING gin (fts);

-- Keyword search's BM25 statistics, per owner, model and text search configuration: how many
-- chunks, their length in lexeme occurrences, and per lexeme how many chunks hold it. Kept
-- exact by the triggers below on every insert, update and delete of chunks (a restore's COPY
-- included), so they are not dumped; docchat.rebuild_search_stats() recomputes them. Users
-- hold no privilege on them: another owner's vocabulary is nobody's business.
CREATE FUNCTION docchat.fts_length(fts tsvector) RETURNS integer
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'fts_length_wrapper';
CREATE FUNCTION docchat.bm25_score(fts tsvector, lexemes text[], idf double precision[], avg_terms double precision,
                                   k1 double precision, b double precision) RETURNS double precision
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'bm25_score_wrapper';
-- Keyword search's candidates (core/src/bm25/candidates.rs): per configuration, tsqueries whose
-- union holds every chunk whose terms' weights (scale × idf) sum to the threshold; and the
-- threshold (in idf) expected to be met by a number of chunks.
CREATE FUNCTION docchat.keyword_candidates(ts_configs text[], lexemes text[], idf double precision[],
                                           scale double precision, threshold double precision)
RETURNS TABLE (ts_config text, query text)
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'keyword_candidates_wrapper';
CREATE FUNCTION docchat.keyword_threshold(ts_configs text[], lexemes text[], idf double precision[], df bigint[],
                                          matches double precision) RETURNS double precision
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'keyword_threshold_wrapper';

CREATE SEQUENCE docchat.corpus_stats_id_seq;
CREATE TABLE docchat.corpus_stats (
    id        bigint NOT NULL UNIQUE DEFAULT nextval('docchat.corpus_stats_id_seq'),
    owner     text NOT NULL,
    model     text NOT NULL,
    ts_config text NOT NULL,
    n_chunks  bigint NOT NULL CHECK (n_chunks >= 0),
    n_terms   bigint NOT NULL CHECK (n_terms >= 0),
    PRIMARY KEY (owner, model, ts_config)
);
CREATE TABLE docchat.lexeme_stats (
    corpus   bigint NOT NULL REFERENCES docchat.corpus_stats (id) ON DELETE CASCADE,
    lexeme   text NOT NULL,
    n_chunks bigint NOT NULL CHECK (n_chunks >= 0),  -- document frequency; rows reaching 0 are deleted
    PRIMARY KEY (corpus, lexeme)
);
ALTER TABLE docchat.corpus_stats ENABLE ROW LEVEL SECURITY;
ALTER TABLE docchat.corpus_stats FORCE ROW LEVEL SECURITY;
ALTER TABLE docchat.lexeme_stats ENABLE ROW LEVEL SECURITY;
ALTER TABLE docchat.lexeme_stats FORCE ROW LEVEL SECURITY;

-- Counts the statement's new chunks in and its old ones out (all of them on TRUNCATE). Each corpus row is written before
-- its lexemes, so transactions writing one owner's corpus queue on that row instead of
-- deadlocking on lexemes; counts never go below zero, and lexemes that reach it are deleted.
CREATE FUNCTION docchat.count_search_terms() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER  -- writes tables users cannot; reads only the statement's own rows
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    emptied bigint[];
    gone text[];
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM docchat.lexeme_stats;
        DELETE FROM docchat.corpus_stats;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE docchat.corpus_stats s
        SET n_chunks = greatest(s.n_chunks - o.n_chunks, 0), n_terms = greatest(s.n_terms - o.n_terms, 0)
        FROM (SELECT c.owner, c.model, c.ts_config, count(*) AS n_chunks, sum(docchat.fts_length(c.fts)) AS n_terms
              FROM old_chunks c GROUP BY 1, 2, 3) o
        WHERE (s.owner, s.model, s.ts_config) = (o.owner, o.model, o.ts_config);
        -- A statement cannot update and delete one row: the emptied ones are deleted next.
        WITH counted AS (
            UPDATE docchat.lexeme_stats l SET n_chunks = greatest(l.n_chunks - o.n_chunks, 0)
            FROM (SELECT s.id AS corpus, t.lexeme, count(*) AS n_chunks
                  FROM old_chunks c
                  JOIN docchat.corpus_stats s ON (s.owner, s.model, s.ts_config) = (c.owner, c.model, c.ts_config),
                       unnest(c.fts) t
                  GROUP BY 1, 2) o
            WHERE l.corpus = o.corpus AND l.lexeme = o.lexeme
            RETURNING l.corpus, l.lexeme, l.n_chunks)
        SELECT array_agg(counted.corpus), array_agg(counted.lexeme) INTO emptied, gone
        FROM counted WHERE counted.n_chunks = 0;
        DELETE FROM docchat.lexeme_stats l USING unnest(emptied, gone) e(corpus, lexeme)
        WHERE l.corpus = e.corpus AND l.lexeme = e.lexeme;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO docchat.corpus_stats AS s (owner, model, ts_config, n_chunks, n_terms)
        SELECT c.owner, c.model, c.ts_config, count(*), sum(docchat.fts_length(c.fts))
        FROM new_chunks c GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (owner, model, ts_config)
        DO UPDATE SET n_chunks = s.n_chunks + excluded.n_chunks, n_terms = s.n_terms + excluded.n_terms;
        INSERT INTO docchat.lexeme_stats AS l (corpus, lexeme, n_chunks)
        SELECT s.id, t.lexeme, count(*)
        FROM new_chunks c
        JOIN docchat.corpus_stats s ON (s.owner, s.model, s.ts_config) = (c.owner, c.model, c.ts_config),
             unnest(c.fts) t
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (corpus, lexeme) DO UPDATE SET n_chunks = l.n_chunks + excluded.n_chunks;
    END IF;
    RETURN NULL;
END
$$;

-- For an admin, after anything that writes chunks without firing triggers (a logical
-- replication apply, session_replication_role = replica).
CREATE FUNCTION docchat.rebuild_search_stats() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    LOCK TABLE docchat.chunks IN SHARE MODE;  -- no chunk is written meanwhile
    DELETE FROM docchat.lexeme_stats;
    DELETE FROM docchat.corpus_stats;
    INSERT INTO docchat.corpus_stats (owner, model, ts_config, n_chunks, n_terms)
    SELECT c.owner, c.model, c.ts_config, count(*), sum(docchat.fts_length(c.fts))
    FROM docchat.chunks c GROUP BY 1, 2, 3;
    INSERT INTO docchat.lexeme_stats (corpus, lexeme, n_chunks)
    SELECT s.id, t.lexeme, count(*)
    FROM docchat.chunks c
    JOIN docchat.corpus_stats s ON (s.owner, s.model, s.ts_config) = (c.owner, c.model, c.ts_config),
         unnest(c.fts) t
    GROUP BY 1, 2;
END
$$;
COMMENT ON FUNCTION docchat.rebuild_search_stats() IS
    'Recomputes keyword search''s BM25 statistics from the chunks (after writes that fired no triggers)';

-- One row per (owner, model, content) ever ingested, locked by each ingest of those bytes until
-- its transaction ends, so that two of them cannot both store a document. Users hold no
-- privilege on it: unlike an advisory lock, nobody can take these to make an ingest wait.
CREATE TABLE docchat.ingest_locks (
    key bytea PRIMARY KEY  -- sha256 of owner, model and the content's sha256
);

CREATE TRIGGER chunks_counted_in AFTER INSERT ON docchat.chunks
    REFERENCING NEW TABLE AS new_chunks FOR EACH STATEMENT EXECUTE FUNCTION docchat.count_search_terms();
CREATE TRIGGER chunks_counted_out AFTER DELETE ON docchat.chunks
    REFERENCING OLD TABLE AS old_chunks FOR EACH STATEMENT EXECUTE FUNCTION docchat.count_search_terms();
CREATE TRIGGER chunks_counted_again AFTER UPDATE ON docchat.chunks
    REFERENCING OLD TABLE AS old_chunks NEW TABLE AS new_chunks FOR EACH STATEMENT EXECUTE FUNCTION docchat.count_search_terms();
CREATE TRIGGER chunks_truncated AFTER TRUNCATE ON docchat.chunks
    FOR EACH STATEMENT EXECUTE FUNCTION docchat.count_search_terms();

CREATE TRIGGER models_index AFTER INSERT ON docchat.models
    FOR EACH ROW EXECUTE FUNCTION docchat.create_model_index();
INSERT INTO docchat.models (name, dimension, max_seq_length, dir, is_default, description) VALUES
    ('all-MiniLM-L6-v2', 384, 256, 'all-MiniLM-L6-v2-int8', true,
     'sentence-transformers all-MiniLM-L6-v2 quantized to int8 compute (fast on CPU; vectors within 0.99 cosine)'),
    ('all-MiniLM-L6-v2-fp32', 384, 256, 'all-MiniLM-L6-v2-fp32', false,
     'all-MiniLM-L6-v2 exported from its fp32 safetensors: sentence-transformers'' own vectors'),
    ('all-mpnet-base-v2', 768, 384, 'all-mpnet-base-v2', false,
     'sentence-transformers all-mpnet-base-v2 (the original system''s model), exported from fp32 safetensors');
-- Everyone reads the registry; only superusers change it (a model folder is code the server loads).
ALTER TABLE docchat.models ENABLE ROW LEVEL SECURITY;
CREATE POLICY models_read ON docchat.models FOR SELECT USING (true);
-- Rows users add are theirs: pg_dump keeps them.
SELECT pg_catalog.pg_extension_config_dump('docchat.models',
    $$WHERE name NOT IN ('all-MiniLM-L6-v2', 'all-MiniLM-L6-v2-fp32', 'all-mpnet-base-v2')$$);

-- Pictures: ingested images and those pulled out of documents, with their CLIP ViT-B/32 vector.
CREATE TABLE docchat.images (
    document_id uuid NOT NULL REFERENCES docchat.documents (id) ON DELETE CASCADE,
    image_index integer NOT NULL,
    owner       text NOT NULL DEFAULT docchat.current_owner(),
    page        integer,
    name        text NOT NULL,  -- where in the document: a ZIP entry, "page N image M", "document"
    mime_type   text NOT NULL,
    width       integer NOT NULL CHECK (width > 0),
    height      integer NOT NULL CHECK (height > 0),
    content     bytea NOT NULL,
    embedding   vector(512) NOT NULL,
    PRIMARY KEY (document_id, image_index)
) WITH (toast_tuple_target = 4080);  -- the picture's bytes go to TOAST, its vector stays inline (as for chunks)
CREATE INDEX images_owner_idx ON docchat.images (owner);
-- For owners with more pictures than docchat.exact_search_limit (smaller ones are scanned exactly).
CREATE INDEX images_hnsw_idx ON docchat.images USING hnsw (embedding @extschema:vector@.vector_cosine_ops);

-- A plain sequence, not an identity: pg_dump keeps an extension sequence's position only when it
-- is registered as configuration, and an identity's sequence cannot be.
CREATE SEQUENCE docchat.searches_id_seq;
CREATE TABLE docchat.searches (
    id          bigint PRIMARY KEY DEFAULT nextval('docchat.searches_id_seq'),
    owner       text NOT NULL DEFAULT docchat.current_owner(),
    query       text NOT NULL,
    mode        text NOT NULL,
    model       text NOT NULL,
    n_results   integer NOT NULL,
    top_similarity double precision,
    duration    interval NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX searches_owner_created_idx ON docchat.searches (owner, created_at DESC);

-- Backups: pg_dump writes every row of the tables that hold user data (their definitions come
-- from CREATE EXTENSION on restore). ingest_jobs registers itself in queue.sql; ingest_locks
-- and the notification key are rebuilt on demand and at install.
-- One call per statement: each rewrites the extension's catalog row.
SELECT pg_catalog.pg_extension_config_dump('docchat.documents', '');
SELECT pg_catalog.pg_extension_config_dump('docchat.chunks', '');
SELECT pg_catalog.pg_extension_config_dump('docchat.images', '');
SELECT pg_catalog.pg_extension_config_dump('docchat.searches', '');
SELECT pg_catalog.pg_extension_config_dump('docchat.searches_id_seq', '');

-- Row-level security: every role sees and writes only its own rows. The owner expression
-- is wrapped in a sub-select so it is evaluated once per statement, not once per row.
ALTER TABLE docchat.documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE docchat.documents FORCE ROW LEVEL SECURITY;
ALTER TABLE docchat.chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE docchat.chunks FORCE ROW LEVEL SECURITY;
ALTER TABLE docchat.images ENABLE ROW LEVEL SECURITY;
ALTER TABLE docchat.images FORCE ROW LEVEL SECURITY;
ALTER TABLE docchat.searches ENABLE ROW LEVEL SECURITY;
ALTER TABLE docchat.searches FORCE ROW LEVEL SECURITY;
CREATE POLICY documents_owner ON docchat.documents
    USING (owner = (SELECT docchat.current_owner())) WITH CHECK (owner = (SELECT docchat.current_owner()));
CREATE POLICY chunks_owner ON docchat.chunks
    USING (owner = (SELECT docchat.current_owner())) WITH CHECK (owner = (SELECT docchat.current_owner()));
CREATE POLICY images_owner ON docchat.images
    USING (owner = (SELECT docchat.current_owner())) WITH CHECK (owner = (SELECT docchat.current_owner()));
CREATE POLICY searches_owner ON docchat.searches
    USING (owner = (SELECT docchat.current_owner())) WITH CHECK (owner = (SELECT docchat.current_owner()));
