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
CREATE FUNCTION docchat.semantic_hits(owner text, m docchat.models, documents uuid[], q @extschema:vector@.vector,
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
CREATE FUNCTION docchat.fused_results(semantic docchat.search_hit[], keyword docchat.search_hit[],
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

-- A bounded record of any query.
CREATE FUNCTION docchat.log_search(query text, mode text, model text, n_results integer,
                                   top_similarity double precision, started timestamptz) RETURNS void
LANGUAGE sql VOLATILE
AS $$
    INSERT INTO docchat.searches (query, mode, model, n_results, top_similarity, duration)
    VALUES (left($1, 2000), $2, $3, $4, $5, clock_timestamp() - $6)
$$;

-- Best chunks first. mode 'semantic' ranks by cosine similarity, 'keyword' by BM25,
-- 'hybrid' by the weighted mean of both sides' scaled scores (docchat.keyword_weight).
-- Only the caller's own chunks are searched: it runs with definer rights (row-level security does
-- not apply), so every query filters by the caller's owner explicitly. When the caller has few
-- chunks of the model (docchat.exact_search_limit) both sides read them through the owner
-- index, the semantic side exactly; else the indexes, and the semantic side falls back to an
-- exact scan when the HNSW index yields fewer than min(depth, chunks) of the caller's.
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
COMMENT ON FUNCTION docchat_search(text, integer, double precision, text, text, jsonb) IS
    'The k best chunks for the query among the caller''s documents embedded with the model: hybrid (default), semantic or keyword ranking, optionally filtered by document ids, mime type, filename or metadata';
