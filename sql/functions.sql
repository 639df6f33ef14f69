-- SQL-language parts of the API; they call the Rust functions defined by the library.

CREATE FUNCTION docchat_embed(input text, model text DEFAULT NULL) RETURNS @extschema:vector@.vector
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT docchat.embed_real(input, model)::@extschema:vector@.vector $$;
COMMENT ON FUNCTION docchat_embed(text, text) IS
    'Sentence embedding of the text, unit length, with the named model (default: docchat.model, else the default in docchat.models)';

-- Many texts in one call: the model worker batches them (and other sessions' requests) together.
CREATE FUNCTION docchat_embed(inputs text[], model text DEFAULT NULL) RETURNS @extschema:vector@.vector[]
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN inputs IS NOT NULL THEN
        (SELECT coalesce(array_agg(e.embedding::@extschema:vector@.vector ORDER BY e.ord), '{}')
         FROM docchat.embed_real_many(inputs, model) e)
    END
$$;
COMMENT ON FUNCTION docchat_embed(text[], text) IS
    'Embeddings of many texts, in order; a NULL text gives a NULL vector';

-- Deletes one of the caller's documents with its chunks; false if there is none with that id.
CREATE FUNCTION docchat_delete(document_id uuid) RETURNS boolean
LANGUAGE sql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT docchat.refuse_writes_on_standby('docchat_delete');
    -- The job row first, as a worker running it does (job, then document): the other order
    -- deadlocks with a job in progress; this way the delete waits for the job's transaction.
    SELECT 1 FROM docchat.ingest_jobs j WHERE j.document_id = $1 AND j.owner = docchat.current_owner() FOR UPDATE;
    WITH gone AS (DELETE FROM docchat.documents d WHERE d.id = $1 AND d.owner = docchat.current_owner() RETURNING 1)
    SELECT count(*) > 0 FROM gone
$$;
COMMENT ON FUNCTION docchat_delete(uuid) IS 'Deletes the caller''s document and its chunks; false when it has none with that id';

-- CLIP (docchat.clip_model_dir): pictures and descriptions in one 512-dimensional space.
CREATE FUNCTION docchat_embed_image(image bytea) RETURNS @extschema:vector@.vector(512)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT docchat.clip_image_real(image)::@extschema:vector@.vector(512) $$;
COMMENT ON FUNCTION docchat_embed_image(bytea) IS
    'CLIP embedding of an image (PNG, JPEG, GIF, BMP, TIFF, WebP), unit length, with CLIP''s own preprocessing';

CREATE FUNCTION docchat_embed_image_query(query text) RETURNS @extschema:vector@.vector(512)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT docchat.clip_text_real(query)::@extschema:vector@.vector(512) $$;
COMMENT ON FUNCTION docchat_embed_image_query(text) IS
    'A description''s embedding in the pictures'' space (CLIP text, same space as docchat_embed_image), unit length; 77 tokens at most, the rest is cut';

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
CREATE FUNCTION docchat_search_images(query text, k integer DEFAULT 8)
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
COMMENT ON FUNCTION docchat_search_images(text, integer) IS
    'The caller''s k pictures closest to the description (CLIP), best first';

-- Who may do what. Users read their own rows through row-level security and change them only
-- through docchat's functions: those that write run with definer rights (pinned search_path)
-- and store and filter by docchat.current_owner(), the caller. Nobody but an admin may run
-- anything until docchat.grant_usage(role) says so; the worker-only functions never.
CREATE FUNCTION docchat.internal_functions() RETURNS text[]
LANGUAGE sql IMMUTABLE
RETURN ARRAY['claim_ingest_job', 'fail_ingest_job', 'pending_jobs', 'job_is_running', 'create_model_index',
             'notify_status', 'ingest_channel', 'refuse_writes_on_standby', 'internal_functions', 'api_functions', 'grant_usage', 'revoke_usage',
             'filtered_documents', 'visible_chunks', 'widen_ef_search', 'semantic_hits', 'query_terms', 'bm25_hits', 'keyword_hits', 'fused_results',
             'log_search', 'search_settings', 'fts_length', 'bm25_score', 'keyword_candidates', 'keyword_threshold', 'count_search_terms', 'rebuild_search_stats',
             'nearest_images'];

-- The functions a user may call: docchat's own, in its two schemas, but the internal ones.
CREATE FUNCTION docchat.api_functions() RETURNS SETOF regprocedure
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.oid::regprocedure
    FROM pg_proc p
    JOIN pg_depend dep ON dep.classid = 'pg_proc'::regclass AND dep.objid = p.oid AND dep.deptype = 'e'
    JOIN pg_extension e ON e.oid = dep.refobjid AND e.extname = 'docchat'
    WHERE p.proname <> ALL (docchat.internal_functions())
    ORDER BY 1::text
$$;


-- Everything a role needs to use docchat, and nothing that lets it write a row directly:
-- its own rows to read (vectors excepted: an index scan over them would count other owners'
-- rows near a probe in EXPLAIN ANALYZE), its own documents to delete, the SQL functions.
CREATE FUNCTION docchat.grant_usage(role regrole) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f regprocedure;
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA docchat TO %s', role);
    EXECUTE format('GRANT SELECT ON docchat.documents, docchat.searches, docchat.models, '
                   'docchat.ingest_progress, docchat.stats TO %s', role);
    EXECUTE format('GRANT SELECT (document_id, image_index, owner, page, name, mime_type, width, height, content) '
                   'ON docchat.images TO %s', role);
    EXECUTE format('GRANT DELETE ON docchat.documents TO %s', role);
    EXECUTE format('GRANT SELECT (document_id, chunk_index, owner, content, char_start, char_end, page, n_tokens, '
                   'heading, model, ts_config, fts) ON docchat.chunks TO %s', role);
    -- Not the bytes nor the options (they hold the password).
    EXECUTE format('GRANT SELECT (document_id, owner, attempts, max_attempts, retry_delay, last_error, run_after, '
                   'enqueued_at, started_at, phase_started_at, updated_at, finished_at, pages_done, pages_total, '
                   'chunks_done, chunks_total, chunks_cached, worker_pid) ON docchat.ingest_jobs TO %s', role);
    FOR f IN SELECT * FROM docchat.api_functions() LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', f, role);
    END LOOP;
END
$$;
COMMENT ON FUNCTION docchat.grant_usage(regrole) IS
    'Lets the role use docchat: its own documents, chunks, pictures, searches and jobs, and every docchat_* function';

CREATE FUNCTION docchat.revoke_usage(role regrole) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT * FROM docchat.api_functions() LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %s', f, role);
    END LOOP;
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA docchat FROM %s', role);
    EXECUTE format('REVOKE USAGE ON SCHEMA docchat FROM %s', role);
END
$$;
COMMENT ON FUNCTION docchat.revoke_usage(regrole) IS 'Undoes docchat.grant_usage (the role''s rows stay)';

-- Last, so that it covers every function above (grant_usage and revoke_usage included).
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
