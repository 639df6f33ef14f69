-- docchat_search in named parts: argument checks, the caller's scope, semantic hits, keyword
-- hits, fusion and the search log.

-- A lexeme as a one-term tsquery, quoted so the tsquery parser keeps it whole.
CREATE FUNCTION docchat.quote_lexeme(lexeme text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN '''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || '''';

-- Any of the query's lexemes under a text search configuration (for snippets); NULL if none.
CREATE FUNCTION docchat.any_lexeme_query(config text, query text) RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (SELECT string_agg(docchat.quote_lexeme(t.lexeme), ' | ')::tsquery
        FROM unnest(docchat.to_fts(config, query)) t);

-- One ranked hit of one side of a search.
CREATE TYPE docchat.search_hit AS (document_id uuid, chunk_index integer, score double precision);

-- Does the document pass a docchat_search filter? Keys: document_ids (array of ids), mime_type,
-- filename; every other key must match the document's metadata (jsonb containment).
CREATE FUNCTION docchat.filter_matches(d docchat.documents, filter jsonb) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
RETURN (NOT filter ? 'document_ids' OR d.id::text IN (SELECT jsonb_array_elements_text(filter -> 'document_ids')))
   AND (NOT filter ? 'mime_type' OR d.mime_type = filter ->> 'mime_type')
   AND (NOT filter ? 'filename' OR d.filename = filter ->> 'filename')
   AND d.metadata @> (filter - 'document_ids' - 'mime_type' - 'filename');

-- k of every docchat function that returns the best k of something.
CREATE FUNCTION docchat.check_k(caller text, k integer) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF k IS NULL OR k < 1 OR k > 1000 THEN
        RAISE EXCEPTION '%: k must be between 1 and 1000, got %', caller, coalesce(k::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- The arguments docchat_search and chat share; caller names the function in the messages.
CREATE FUNCTION docchat.check_search_args(caller text, query text, k integer, threshold double precision,
                                          mode text, filter jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF query IS NULL OR btrim(query) = '' THEN
        RAISE EXCEPTION '%: query is empty', caller
            USING ERRCODE = 'invalid_parameter_value', HINT = 'pass the question to search for';
    END IF;
    PERFORM docchat.check_k(caller, k);
    IF threshold IS NULL OR threshold < -1 OR threshold > 1 THEN
        RAISE EXCEPTION '%: threshold must be between -1 and 1, got %', caller, coalesce(threshold::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'similarity is cosine similarity; 0.3 keeps loosely related chunks';
    END IF;
    IF mode IS NULL OR mode NOT IN ('hybrid', 'semantic', 'keyword') THEN
        RAISE EXCEPTION '%: unknown mode %', caller, coalesce(quote_literal(mode), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'mode is ''hybrid'', ''semantic'' or ''keyword''';
    END IF;
    IF filter IS NOT NULL AND jsonb_typeof(filter) <> 'object' THEN
        RAISE EXCEPTION '%: filter must be a JSON object, got %', caller, filter
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'e.g. {"mime_type": "application/pdf"}, {"document_ids": ["..."]} or any metadata keys';
    END IF;
    IF filter ? 'document_ids' AND (jsonb_typeof(filter -> 'document_ids') <> 'array'
        OR EXISTS (SELECT FROM jsonb_array_elements(filter -> 'document_ids') e
                   WHERE jsonb_typeof(e) <> 'string' OR e #>> '{}' !~* '^[0-9a-f]{8}-?([0-9a-f]{4}-?){3}[0-9a-f]{12}$')) THEN
        RAISE EXCEPTION '%: filter document_ids must be an array of document ids', caller
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- The owner's documents of the model that pass the filter; NULL (all of them) without one.
CREATE FUNCTION docchat.filtered_documents(owner text, model text, filter jsonb) RETURNS uuid[]
LANGUAGE sql STABLE
RETURN CASE WHEN filter IS NOT NULL AND filter <> '{}' THEN
    (SELECT coalesce(array_agg(d.id), '{}') FROM docchat.documents d
     WHERE d.owner = filtered_documents.owner AND d.model = filtered_documents.model AND docchat.filter_matches(d, filter))
END;

-- How many of the owner's chunks of the model (in the documents, if given) there are, counting
-- at most up_to. Planned for the actual owner (EXECUTE): the owner index for a small owner, a
-- sequential scan for a large one.
CREATE FUNCTION docchat.count_chunks(owner text, model text, documents uuid[], up_to bigint) RETURNS bigint
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE 'SELECT count(*) FROM (SELECT FROM docchat.chunks c
             WHERE c.owner = $1 AND c.model = $2 AND ($3 IS NULL OR c.document_id = ANY ($3)) LIMIT $4) mine'
        INTO n USING owner, model, documents, up_to;
    RETURN n;
END
$$;

-- The depth nearest chunks by cosine similarity. exact: a scan of the owner's rows (not the
-- index's expression, no cast to the dimension), so other owners' rows never crowd the caller's
-- out; else the model's HNSW index with iterative scans.
CREATE FUNCTION docchat.semantic_hits(owner text, m docchat.models, documents uuid[], q @extschema:vector@.vector,
                                      depth integer, exact boolean) RETURNS docchat.search_hit[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, @extschema:vector@, pg_temp
SET hnsw.iterative_scan = relaxed_order
AS $$
DECLARE
    hits docchat.search_hit[];
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
    PERFORM set_config('hnsw.ef_search', greatest(depth, 40)::text, true);
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
    RETURN hits;
END
$$;

-- The depth best chunks for the query's lexemes: the sum over them of idf x ts_rank's saturating
-- term frequency (with document-length normalisation), idf over the owner's n_chunks chunks.
CREATE FUNCTION docchat.keyword_hits(owner text, model text, documents uuid[], query text, n_chunks bigint,
                                     depth integer) RETURNS docchat.search_hit[]
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    hits docchat.search_hit[];
BEGIN
    EXECUTE $query$
        WITH terms AS (
            -- the query's lexemes under each configuration the owner's documents use
            SELECT l.ts_config, t.lexeme, docchat.quote_lexeme(t.lexeme)::tsquery AS tsq
            FROM (SELECT DISTINCT d.ts_config FROM docchat.documents d
                  WHERE d.owner = $1 AND d.model = $2 AND ($3 IS NULL OR d.id = ANY ($3))) l,
                 unnest(docchat.to_fts(l.ts_config, $4)) t),
        hits AS (
            SELECT c.document_id, c.chunk_index, ts_rank(c.fts, t.tsq, 1) AS tf,
                   count(*) OVER (PARTITION BY t.ts_config, t.lexeme) AS df
            FROM terms t JOIN docchat.chunks c ON c.fts @@ t.tsq AND c.ts_config = t.ts_config
            WHERE c.owner = $1 AND c.model = $2 AND ($3 IS NULL OR c.document_id = ANY ($3)))
        SELECT coalesce(array_agg(ROW(h.document_id, h.chunk_index, h.score)::docchat.search_hit
                                  ORDER BY h.score DESC, h.document_id, h.chunk_index), '{}')
        FROM (SELECT hits.document_id, hits.chunk_index,
                     sum(hits.tf::float8 * ln(1 + ($5 - hits.df + 0.5)::float8 / (hits.df + 0.5))) AS score
              FROM hits GROUP BY hits.document_id, hits.chunk_index
              ORDER BY score DESC, hits.document_id, hits.chunk_index
              LIMIT $6) h
        $query$
        INTO hits USING owner, model, documents, query, n_chunks, depth;
    RETURN hits;
END
$$;

-- Both sides' hits as docchat_search's rows, best first: the semantic or keyword score alone, or
-- reciprocal rank fusion (k = 60) with the keyword side weighted. threshold drops chunks below
-- that cosine similarity unless the keyword side found them.
CREATE FUNCTION docchat.fused_results(semantic docchat.search_hit[], keyword docchat.search_hit[],
                                      q @extschema:vector@.vector, query text, mode text,
                                      keyword_weight double precision, threshold double precision, k integer)
RETURNS TABLE (document_id uuid, filename text, page integer, chunk_index integer, char_start integer,
               char_end integer, n_tokens integer, content text, snippet text, score double precision,
               similarity double precision, keyword_score double precision, metadata jsonb)
LANGUAGE sql STABLE
SET search_path = pg_catalog, @extschema:vector@, pg_temp
AS $$
    WITH s AS (SELECT h.document_id, h.chunk_index, h.score, h.rank
               FROM unnest($1) WITH ORDINALITY h(document_id, chunk_index, score, rank)),
    kw AS (SELECT h.document_id, h.chunk_index, h.score, h.rank
           FROM unnest($2) WITH ORDINALITY h(document_id, chunk_index, score, rank)),
    -- MATERIALIZED: its keys are then plain columns, which row-level security lets the primary-key
    -- lookups use (a COALESCE over the full join is not leakproof, so it would force full scans).
    fused AS MATERIALIZED (
        SELECT coalesce(s.document_id, kw.document_id) AS document_id,
               coalesce(s.chunk_index, kw.chunk_index) AS chunk_index,
               s.score AS similarity, kw.score AS keyword_score,
               CASE $5 WHEN 'semantic' THEN s.score
                       WHEN 'keyword' THEN kw.score
                       ELSE coalesce(1.0 / (60 + s.rank), 0) + $6 * coalesce(1.0 / (60 + kw.rank), 0) END AS score
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

-- A bounded record of any query.
CREATE FUNCTION docchat.log_search(query text, mode text, model text, n_results integer,
                                   top_similarity double precision, started timestamptz) RETURNS void
LANGUAGE sql VOLATILE
AS $$
    INSERT INTO docchat.searches (query, mode, model, n_results, top_similarity, duration)
    VALUES (left($1, 2000), $2, $3, $4, $5, clock_timestamp() - $6)
$$;

-- Best chunks first. mode 'semantic' ranks by cosine similarity, 'keyword' by a BM25-like score,
-- 'hybrid' by reciprocal rank fusion of both sides' top lists (docchat.keyword_weight).
-- Only the caller's own chunks are searched: it runs with definer rights (row-level security does
-- not apply), so every query filters by the caller's owner explicitly. When the caller has few
-- chunks of the model (docchat.exact_search_limit) the semantic side scans them exactly.
CREATE FUNCTION docchat_search(query text, k integer DEFAULT 8, threshold double precision DEFAULT 0.3,
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
    -- The keyword side's idf needs every chunk; the semantic side only whether they are more than the limit.
    visible := docchat.count_chunks(me, m.name, ids, CASE WHEN mode = 'semantic' THEN settings.exact_search_limit + 1 END);
    IF mode <> 'keyword' THEN
        q := @extschema@.docchat_embed(query, m.name);
        semantic := docchat.semantic_hits(me, m, ids, q, depth, visible <= settings.exact_search_limit);
    END IF;
    IF mode <> 'semantic' THEN
        keyword := docchat.keyword_hits(me, m.name, ids, query, visible, depth);
    END IF;
    RETURN QUERY SELECT * FROM docchat.fused_results(semantic, keyword, q, query, mode, settings.keyword_weight, threshold, k);
    GET DIAGNOSTICS n = ROW_COUNT;
    -- Not on a hot standby, which cannot write (docchat.search_settings() says so).
    IF settings.log_searches THEN
        PERFORM docchat.log_search(query, mode, m.name, n, (SELECT max(h.score) FROM unnest(semantic) h), started);
    END IF;
END
$$;
COMMENT ON FUNCTION docchat_search(text, integer, double precision, text, text, jsonb) IS
    'The k best chunks for the query among the caller''s documents embedded with the model: hybrid (default), semantic or keyword ranking, optionally filtered by document ids, mime type, filename or metadata';
