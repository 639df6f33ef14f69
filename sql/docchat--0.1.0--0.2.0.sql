-- docchat 0.1.0 -> 0.2.0: keyword search by BM25 over exact per-owner statistics, hybrid search by
-- the weighted mean of both sides' scaled scores, search plans
-- that do not rest on the planner's estimates, an index for pictures, queries first in the
-- model worker (library only).
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

CREATE TRIGGER chunks_counted_in AFTER INSERT ON docchat.chunks
    REFERENCING NEW TABLE AS new_chunks FOR EACH STATEMENT EXECUTE FUNCTION docchat.count_search_terms();
CREATE TRIGGER chunks_counted_out AFTER DELETE ON docchat.chunks
    REFERENCING OLD TABLE AS old_chunks FOR EACH STATEMENT EXECUTE FUNCTION docchat.count_search_terms();
CREATE TRIGGER chunks_counted_again AFTER UPDATE ON docchat.chunks
    REFERENCING OLD TABLE AS old_chunks NEW TABLE AS new_chunks FOR EACH STATEMENT EXECUTE FUNCTION docchat.count_search_terms();
CREATE TRIGGER chunks_truncated AFTER TRUNCATE ON docchat.chunks
    FOR EACH STATEMENT EXECUTE FUNCTION docchat.count_search_terms();

-- The chunks stored under 0.1.0, counted.
SELECT docchat.rebuild_search_stats();

-- For owners with more pictures than docchat.exact_search_limit (smaller ones are scanned exactly).
CREATE INDEX images_hnsw_idx ON docchat.images USING hnsw (embedding @extschema:vector@.vector_cosine_ops);

-- docchat_search's parts: exact counts instead of a count of rows read, BM25, pinned plans.
DROP FUNCTION docchat.count_chunks(text, text, uuid[], bigint);
DROP FUNCTION docchat.keyword_hits(text, text, uuid[], text, bigint, integer);
DROP FUNCTION docchat.search_settings();
CREATE FUNCTION docchat."search_settings"() RETURNS TABLE (
	"keyword_weight" double precision,  /* f64 */
	"exact_search_limit" INT,  /* i32 */
	"log_searches" bool,  /* bool */
	"bm25_k1" double precision,  /* f64 */
	"bm25_b" double precision  /* f64 */
)
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'search_settings_wrapper';

-- How many of the owner's chunks of the model (in the documents, if given) there are, exactly
-- and without reading them: from the keyword statistics, or the documents' chunk counts.
CREATE FUNCTION docchat.visible_chunks(owner text, model text, documents uuid[]) RETURNS bigint
LANGUAGE sql STABLE
RETURN CASE WHEN documents IS NULL THEN
    (SELECT coalesce(sum(s.n_chunks), 0) FROM docchat.corpus_stats s
     WHERE s.owner = visible_chunks.owner AND s.model = visible_chunks.model)
ELSE
    (SELECT coalesce(sum(d.n_chunks), 0) FROM docchat.documents d
     WHERE d.id = ANY (visible_chunks.documents) AND d.owner = visible_chunks.owner AND d.model = visible_chunks.model)
END;

-- Sets hnsw.ef_search for this transaction to at least depth and 100 (never lower than the
-- caller's) and returns the old value, which the caller puts back.
CREATE FUNCTION docchat.widen_ef_search(depth integer) RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    old text := coalesce(current_setting('hnsw.ef_search', true), '40');
BEGIN
    PERFORM set_config('hnsw.ef_search', greatest(depth, 100, old::integer)::text, true);
    RETURN old;
END
$$;

-- The depth nearest chunks by cosine similarity. exact: a scan of the owner's rows (not the
-- index's expression, no cast to the dimension), so other owners' rows never crowd the caller's
-- out; else the model's HNSW index with iterative scans. The caller chose from exact counts, so
-- the plan must not rest on the planner's estimates (stale for an owner that grew fast): no
-- sequential scans and no sorts where the index can order.
CREATE OR REPLACE FUNCTION docchat.semantic_hits(owner text, m docchat.models, documents uuid[], q @extschema:vector@.vector,
                                      depth integer, exact boolean) RETURNS docchat.search_hit[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, @extschema:vector@, pg_temp
SET hnsw.iterative_scan = relaxed_order
SET enable_seqscan = off
SET enable_sort = off
AS $$
DECLARE
    hits docchat.search_hit[];
    ef_search text;
BEGIN
    IF exact THEN
        EXECUTE 'SELECT coalesce(array_agg(ROW(h.document_id, h.chunk_index, h.score)::docchat.search_hit
                                           ORDER BY h.score DESC, h.document_id, h.chunk_index), ''{}'')
                 FROM (SELECT c.document_id, c.chunk_index, 1 - (c.embedding <=> $4) AS score
                       FROM docchat.chunks c
                       WHERE c.owner = $1 AND c.model = $2 AND ($3 IS NULL OR c.document_id = ANY ($3))
                       ORDER BY c.embedding <=> $4, c.document_id, c.chunk_index
                       LIMIT $5) h'
            INTO hits USING owner, m.name, documents, q, depth;
        RETURN hits;
    END IF;
    -- The candidate list: the caller's hnsw.ef_search, at least depth and at least 100
    -- (pgvector's 40 gave recall@10 0.871 at 100,000 chunks, 100 gave 0.934).
    ef_search := docchat.widen_ef_search(depth);
    -- The model's name and dimension are spelled out so the planner matches its partial index.
    EXECUTE format($query$
        SELECT coalesce(array_agg(ROW(h.document_id, h.chunk_index, h.score)::docchat.search_hit
                     ORDER BY h.score DESC, h.document_id, h.chunk_index), '{}')
        FROM (SELECT c.document_id, c.chunk_index, 1 - (c.embedding::vector(%1$s) <=> $1) AS score
              FROM docchat.chunks c
              WHERE c.model = %2$L AND c.owner = $4 AND ($3 IS NULL OR c.document_id = ANY ($3))
              ORDER BY c.embedding::vector(%1$s) <=> $1
              LIMIT $2) h
        $query$, m.dimension, m.name)
        INTO hits USING q, depth, documents, owner;
    -- Put back: set_config's local value would otherwise last the caller's transaction.
    PERFORM set_config('hnsw.ef_search', ef_search, true);
    RETURN hits;
END
$$;

-- A query lexeme under one of the owner's text search configurations, with that corpus' mean
-- chunk length (lexeme occurrences), the lexeme's idf and the number of chunks holding it.
CREATE TYPE docchat.query_term AS (ts_config text, avg_terms double precision, lexeme text,
                                   idf double precision, n_chunks bigint);

-- The query's lexemes the owner's chunks of the model hold, per text search configuration.
CREATE FUNCTION docchat.query_terms(owner text, model text, query text) RETURNS SETOF docchat.query_term
LANGUAGE sql STABLE
AS $$
    SELECT s.ts_config, s.n_terms::float8 / s.n_chunks, l.lexeme,
           ln(1 + (s.n_chunks - l.n_chunks + 0.5)::float8 / (l.n_chunks + 0.5)), l.n_chunks
    FROM docchat.corpus_stats s
    CROSS JOIN LATERAL (SELECT DISTINCT t.lexeme FROM unnest(docchat.to_fts(s.ts_config, $3)) t) q
    JOIN docchat.lexeme_stats l ON l.corpus = s.id AND l.lexeme = q.lexeme
    WHERE s.owner = $1 AND s.model = $2 AND s.n_chunks > 0
$$;

-- The depth best of the owner's chunks whose terms' weights (scale × idf) sum to the threshold
-- (0: every chunk holding a term), scored by BM25 (k1, b) over all the terms.
-- docchat.keyword_candidates gives the chunks as tsqueries, which one bitmap scan of the text
-- index unites; scan_owner reads the owner's chunks through the owner index (for few chunks)
-- instead. The caller chose from exact counts, so plain index scans and sequential scans (what
-- a stale estimate picks) are off.
CREATE FUNCTION docchat.bm25_hits(owner text, model text, documents uuid[], terms docchat.query_term[],
                                  scale double precision, threshold double precision, scan_owner boolean,
                                  depth integer, k1 double precision, b double precision) RETURNS docchat.search_hit[]
LANGUAGE plpgsql STABLE
SET enable_seqscan = off
SET enable_indexscan = off
AS $$
DECLARE
    hits docchat.search_hit[];
BEGIN
    EXECUTE format($query$
        WITH queries AS (
            SELECT t.ts_config, t.avg_terms, array_agg(t.lexeme) AS lexemes, array_agg(t.idf) AS idf
            FROM unnest($4) t
            GROUP BY t.ts_config, t.avg_terms),
        matches AS (
            SELECT m.ts_config, array_agg(m.query::tsquery) AS tsq
            FROM (SELECT array_agg(t.ts_config) AS configs, array_agg(t.lexeme) AS lexemes, array_agg(t.idf) AS idf
                  FROM unnest($4) t) a
            CROSS JOIN LATERAL docchat.keyword_candidates(a.configs, a.lexemes, a.idf, $7, $8) m
            GROUP BY m.ts_config)
        SELECT coalesce(array_agg(ROW(h.document_id, h.chunk_index, h.score)::docchat.search_hit
                                  ORDER BY h.score DESC, h.document_id, h.chunk_index), '{}')
        FROM (SELECT c.document_id, c.chunk_index, docchat.bm25_score(c.fts, q.lexemes, q.idf, q.avg_terms, $5, $6) AS score
              FROM queries q
              JOIN matches m ON m.ts_config = q.ts_config
              JOIN docchat.chunks c ON %s AND c.ts_config = q.ts_config
              WHERE c.owner = $1 AND c.model = $2 AND ($3 IS NULL OR c.document_id = ANY ($3))
              ORDER BY score DESC, c.document_id, c.chunk_index
              LIMIT $9) h
        $query$,
        -- IS TRUE hides the match from the text index.
        CASE WHEN scan_owner THEN '(c.fts @@ ANY (m.tsq)) IS TRUE' ELSE 'c.fts @@ ANY (m.tsq)' END)
        INTO hits USING owner, model, documents, terms, k1, b, scale, threshold, depth;
    RETURN hits;
END
$$;

-- The depth best chunks for the query by BM25 (k1, b) over the owner's chunks of the model, with
-- the owner's corpus statistics: idf from the number of chunks holding each lexeme, length in
-- lexeme occurrences against the mean, per text search configuration.
-- Through the text index the result is the same, read in two passes. A term adds less than
-- idf × (k1 + 1) to any chunk's score, and a single occurrence in a chunk of mean length adds
-- idf. First the chunks whose terms' idf sum to a threshold guessed to be met by about
-- 20 × depth of them (docchat.keyword_threshold): the depth-th best score there is a floor.
-- Then only the chunks whose terms' bounds reach that floor can enter, and the text index
-- intersects the common terms' posting lists instead of reading them chunk by chunk; when the
-- floor passes the first pass' own bound, nothing outside it can enter and it is the result.
CREATE FUNCTION docchat.keyword_hits(owner text, model text, documents uuid[], query text, scan_owner boolean,
                                     depth integer, k1 double precision, b double precision) RETURNS docchat.search_hit[]
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    terms docchat.query_term[];
    postings bigint;
    hits docchat.search_hit[];
    guess float8;
    floor_score float8 := 0;
BEGIN
    SELECT array_agg(t ORDER BY t.idf DESC, t.ts_config, t.lexeme), sum(t.n_chunks),
           docchat.keyword_threshold(array_agg(t.ts_config), array_agg(t.lexeme), array_agg(t.idf),
                                     array_agg(t.n_chunks), 20 * depth)
    INTO terms, postings, guess
    FROM docchat.query_terms(owner, model, query) t;
    IF terms IS NULL THEN
        RETURN '{}';
    ELSIF scan_owner OR postings <= 20 * depth THEN
        RETURN docchat.bm25_hits(owner, model, documents, terms, 1, 0, scan_owner, depth, k1, b);
    END IF;
    hits := docchat.bm25_hits(owner, model, documents, terms, 1, guess, false, depth, k1, b);
    IF cardinality(hits) = depth THEN
        floor_score := (hits[depth]).score;
        -- (1 + 1e-9), (1 - 1e-9): bounds and scores are rounded differently.
        IF floor_score > (k1 + 1) * guess * (1 + 1e-9) THEN
            RETURN hits;
        END IF;
    END IF;
    RETURN docchat.bm25_hits(owner, model, documents, terms, k1 + 1, floor_score * (1 - 1e-9), false, depth, k1, b);
END
$$;

-- Both sides' hits as docchat_search's rows, best first: the semantic or keyword score alone, or
-- their weighted mean after each side's scores are scaled to 0..1 between its best and its
-- 100th (so the same whatever k; a chunk one side did not find gets 0 there). On SciFact this beats reciprocal rank fusion
-- (bench/RESULTS.md). threshold drops chunks below that cosine similarity unless the keyword
-- side found them.
CREATE OR REPLACE FUNCTION docchat.fused_results(semantic docchat.search_hit[], keyword docchat.search_hit[],
                                      q @extschema:vector@.vector, query text, mode text,
                                      keyword_weight double precision, threshold double precision, k integer)
RETURNS TABLE (document_id uuid, filename text, page integer, chunk_index integer, char_start integer,
               char_end integer, n_tokens integer, content text, snippet text, score double precision,
               similarity double precision, keyword_score double precision, metadata jsonb)
LANGUAGE sql STABLE
SET search_path = pg_catalog, @extschema:vector@, pg_temp
AS $$
    WITH s AS (SELECT h.document_id, h.chunk_index, h.score,
                      coalesce(greatest(h.score - min(h.score) FILTER (WHERE h.rank <= 100) OVER (), 0)
                               / nullif(max(h.score) OVER () - min(h.score) FILTER (WHERE h.rank <= 100) OVER (), 0), 1) AS scaled
               FROM unnest($1) WITH ORDINALITY h(document_id, chunk_index, score, rank)),
    kw AS (SELECT h.document_id, h.chunk_index, h.score,
                  coalesce(greatest(h.score - min(h.score) FILTER (WHERE h.rank <= 100) OVER (), 0)
                           / nullif(max(h.score) OVER () - min(h.score) FILTER (WHERE h.rank <= 100) OVER (), 0), 1) AS scaled
           FROM unnest($2) WITH ORDINALITY h(document_id, chunk_index, score, rank)),
    -- MATERIALIZED: its keys are then plain columns, which row-level security lets the primary-key
    -- lookups use (a COALESCE over the full join is not leakproof, so it would force full scans).
    fused AS MATERIALIZED (
        SELECT coalesce(s.document_id, kw.document_id) AS document_id,
               coalesce(s.chunk_index, kw.chunk_index) AS chunk_index,
               s.score AS similarity, kw.score AS keyword_score,
               CASE $5 WHEN 'semantic' THEN s.score
                       WHEN 'keyword' THEN kw.score
                       ELSE (coalesce(s.scaled, 0) + $6 * coalesce(kw.scaled, 0)) / (1 + $6) END AS score
        FROM s FULL JOIN kw ON kw.document_id = s.document_id AND kw.chunk_index = s.chunk_index)
    SELECT f.document_id, d.filename, c.page, f.chunk_index, c.char_start, c.char_end, c.n_tokens, c.content,
           coalesce(ts_headline(c.ts_config::regconfig, c.content, docchat.any_lexeme_query(c.ts_config, $4),
                                'MaxWords=35, MinWords=15, MaxFragments=2'),
                    left(c.content, 200)),
           f.score::float8, coalesce(f.similarity, 1 - (c.embedding <=> $3)), f.keyword_score, d.metadata
    FROM fused f
    JOIN docchat.chunks c ON c.document_id = f.document_id AND c.chunk_index = f.chunk_index
    JOIN docchat.documents d ON d.id = f.document_id
    WHERE f.keyword_score IS NOT NULL OR coalesce(f.similarity, 1 - (c.embedding <=> $3)) >= $7
    ORDER BY f.score DESC, f.document_id, f.chunk_index
    LIMIT $8
$$;

-- Best chunks first. mode 'semantic' ranks by cosine similarity, 'keyword' by BM25,
-- 'hybrid' by the weighted mean of both sides' scaled scores (docchat.keyword_weight).
-- Only the caller's own chunks are searched: it runs with definer rights (row-level security does
-- not apply), so every query filters by the caller's owner explicitly. When the caller has few
-- chunks of the model (docchat.exact_search_limit) both sides read them through the owner
-- index, the semantic side exactly; else the indexes, and the semantic side falls back to an
-- exact scan when the HNSW index yields fewer than min(depth, chunks) of the caller's.
CREATE OR REPLACE FUNCTION docchat_search(query text, k integer DEFAULT 8, threshold double precision DEFAULT 0.3,
                               model text DEFAULT NULL, mode text DEFAULT 'hybrid', filter jsonb DEFAULT NULL)
RETURNS TABLE (document_id uuid, filename text, page integer, chunk_index integer, char_start integer,
               char_end integer, n_tokens integer, content text, snippet text, score double precision,
               similarity double precision, keyword_score double precision, metadata jsonb)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER  -- reads vectors users cannot select and writes the search log; every query names the owner
SET search_path = pg_catalog, @extschema:vector@, pg_temp
AS $$
DECLARE
    started timestamptz := clock_timestamp();
    me text := docchat.current_owner();
    settings record;
    m docchat.models;
    ids uuid[];
    depth integer;
    visible bigint;
    q @extschema:vector@.vector;
    semantic docchat.search_hit[] := '{}';
    keyword docchat.search_hit[] := '{}';
    n integer;
BEGIN
    PERFORM docchat.check_search_args('docchat_search', query, k, threshold, mode, filter);
    SELECT * INTO settings FROM docchat.search_settings();
    m := docchat.model_for(model);
    ids := docchat.filtered_documents(me, m.name, filter);
    -- Hybrid fuses deeper lists than it returns.
    depth := CASE WHEN mode = 'hybrid' THEN greatest(k, 100) ELSE k END;
    visible := docchat.visible_chunks(me, m.name, ids);
    IF mode <> 'keyword' THEN
        q := @extschema@.docchat_embed(query, m.name);
        semantic := docchat.semantic_hits(me, m, ids, q, depth, visible <= settings.exact_search_limit);
        IF cardinality(semantic) < least(depth, visible) AND visible > settings.exact_search_limit THEN
            semantic := docchat.semantic_hits(me, m, ids, q, depth, true);
        END IF;
    END IF;
    IF mode <> 'semantic' THEN
        keyword := docchat.keyword_hits(me, m.name, ids, query, visible <= settings.exact_search_limit, depth,
                                        settings.bm25_k1, settings.bm25_b);
    END IF;
    RETURN QUERY SELECT * FROM docchat.fused_results(semantic, keyword, q, query, mode, settings.keyword_weight, threshold, k);
    GET DIAGNOSTICS n = ROW_COUNT;
    -- Not on a hot standby, which cannot write (docchat.search_settings() says so).
    IF settings.log_searches THEN
        PERFORM docchat.log_search(query, mode, m.name, n, (SELECT max(h.score) FROM unnest(semantic) h), started);
    END IF;
END
$$;
-- The caller's k pictures nearest to q: an exact scan of the owner's rows, else the HNSW index
-- with iterative scans (pinned plan, as for chunks).
CREATE TYPE docchat.image_hit AS (document_id uuid, image_index integer, similarity double precision);
CREATE FUNCTION docchat.nearest_images(owner text, q @extschema:vector@.vector(512), k integer, exact boolean)
RETURNS SETOF docchat.image_hit
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, @extschema:vector@, pg_temp
SET hnsw.iterative_scan = relaxed_order
SET enable_seqscan = off
SET enable_sort = off
AS $$
DECLARE
    ef_search text;
BEGIN
    IF exact THEN
        -- (i.embedding <=> q) + 0: not the index's ordering, so never an index scan among others' rows.
        RETURN QUERY SELECT i.document_id, i.image_index, 1 - (i.embedding <=> q)
                     FROM docchat.images i WHERE i.owner = nearest_images.owner
                     ORDER BY (i.embedding <=> q) + 0, i.document_id, i.image_index LIMIT k;
    ELSE
        ef_search := docchat.widen_ef_search(k);
        RETURN QUERY SELECT h.document_id, h.image_index, h.similarity
                     FROM (SELECT i.document_id, i.image_index, 1 - (i.embedding <=> q) AS similarity
                           FROM docchat.images i WHERE i.owner = nearest_images.owner
                           ORDER BY i.embedding <=> q LIMIT k) h;
        PERFORM set_config('hnsw.ef_search', ef_search, true);
    END IF;
END
$$;

-- Text-to-image search over the caller's pictures, logged like docchat_search (mode 'images').
-- Up to docchat.exact_search_limit pictures an exact scan of the caller's own vectors, above it
-- the index, falling back to the exact scan should the index yield fewer than k of the caller's.
CREATE OR REPLACE FUNCTION docchat_search_images(query text, k integer DEFAULT 8)
RETURNS TABLE (document_id uuid, filename text, page integer, image_index integer, name text,
               mime_type text, width integer, height integer, similarity double precision)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER  -- users cannot select vectors; the query names the owner
SET search_path = pg_catalog, @extschema:vector@, pg_temp
AS $$
DECLARE
    started timestamptz := clock_timestamp();
    me text := docchat.current_owner();
    settings record;
    q @extschema:vector@.vector(512);
    visible bigint;
    hits docchat.image_hit[];
    hit record;
    n integer := 0;
    top double precision;
BEGIN
    IF query IS NULL OR btrim(query) = '' THEN
        RAISE EXCEPTION 'docchat_search_images: query is empty'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'describe the picture to find';
    END IF;
    PERFORM docchat.check_k('docchat_search_images', k);
    SELECT * INTO settings FROM docchat.search_settings();
    q := docchat.clip_text_real(query)::@extschema:vector@.vector(512);
    SELECT count(*) INTO visible
    FROM (SELECT FROM docchat.images i WHERE i.owner = me LIMIT settings.exact_search_limit::bigint + 1) mine;
    hits := ARRAY(SELECT h FROM docchat.nearest_images(me, q, k, visible <= settings.exact_search_limit) h);
    IF cardinality(hits) < least(k, visible) THEN
        hits := ARRAY(SELECT h FROM docchat.nearest_images(me, q, k, true) h);
    END IF;
    FOR hit IN
        SELECT h.document_id, d.filename, i.page, h.image_index, i.name, i.mime_type, i.width, i.height, h.similarity
        FROM unnest(hits) h
        JOIN docchat.images i ON i.document_id = h.document_id AND i.image_index = h.image_index
        JOIN docchat.documents d ON d.id = h.document_id
        ORDER BY h.similarity DESC, h.document_id, h.image_index
    LOOP
        document_id := hit.document_id; filename := hit.filename; page := hit.page; image_index := hit.image_index;
        name := hit.name; mime_type := hit.mime_type; width := hit.width; height := hit.height; similarity := hit.similarity;
        RETURN NEXT;
        n := n + 1;
        top := greatest(top, hit.similarity);
    END LOOP;
    IF settings.log_searches THEN
        PERFORM docchat.log_search(query, 'images', 'clip', n, top, started);
    END IF;
END
$$;
-- Vectors stay inline in rows up to a page (see sql/schema.sql); rows written before keep theirs
-- in TOAST until rewritten (VACUUM FULL docchat.chunks, docchat.images).
ALTER TABLE docchat.chunks SET (toast_tuple_target = 4080);
ALTER TABLE docchat.images SET (toast_tuple_target = 4080);
-- The new internal functions stay internal.
CREATE OR REPLACE FUNCTION docchat.internal_functions() RETURNS text[]
LANGUAGE sql IMMUTABLE
RETURN ARRAY['claim_ingest_job', 'fail_ingest_job', 'pending_jobs', 'job_is_running', 'create_model_index',
             'notify_status', 'ingest_channel', 'refuse_writes_on_standby', 'internal_functions', 'api_functions', 'grant_usage', 'revoke_usage',
             'filtered_documents', 'visible_chunks', 'widen_ef_search', 'semantic_hits', 'query_terms', 'bm25_hits', 'keyword_hits', 'fused_results',
             'log_search', 'search_settings', 'fts_length', 'bm25_score', 'keyword_candidates', 'keyword_threshold', 'count_search_terms', 'rebuild_search_stats',
             'nearest_images'];

-- As at the end of a fresh install: nothing new is callable by PUBLIC.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA docchat FROM PUBLIC;
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT * FROM docchat.api_functions() LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$$;
