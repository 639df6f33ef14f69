-- docchat_search: semantic (cosine over the model's HNSW index), keyword (full text, BM25-like)
-- and hybrid (reciprocal rank fusion of both), over the caller's own chunks.

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

-- Best chunks first. mode 'semantic' ranks by cosine similarity, 'keyword' by a BM25-like score
-- (sum over the query's lexemes of idf x ts_rank's saturating term frequency, with document-length
-- normalisation; idf from the caller's own chunks), 'hybrid' by reciprocal rank fusion (k = 60) of
-- both sides' top lists, the keyword side weighted by docchat.keyword_weight.
-- threshold drops chunks whose cosine similarity is below it, unless the keyword side found them.
-- Only the caller's own chunks are searched: it runs with definer rights (row-level security does
-- not apply), so every query filters by the caller's owner explicitly.
-- When the caller has few chunks of the model (docchat.exact_search_limit), the semantic side
-- is an exact scan of them, so other owners' rows never crowd the caller's out of an index scan;
-- above that, the HNSW index with iterative scans.
CREATE FUNCTION docchat_search(query text, k integer DEFAULT 8, threshold double precision DEFAULT 0.3,
                               model text DEFAULT NULL, mode text DEFAULT 'hybrid', filter jsonb DEFAULT NULL,
                               images integer DEFAULT 0)
RETURNS TABLE (document_id uuid, filename text, page integer, chunk_index integer, content text,
               snippet text, score double precision, similarity double precision,
               keyword_score double precision, metadata jsonb)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER  -- reads vectors users cannot select and writes the search log; every query names the owner
SET search_path = pg_catalog, @extschema:vector@, pg_temp
SET hnsw.iterative_scan = relaxed_order
SET hnsw.ef_search = 100
AS $$
#variable_conflict use_column
DECLARE
    started timestamptz := clock_timestamp();
    m docchat.models;
    me text := docchat.current_owner();
    q @extschema:vector@.vector;
    ids uuid[];
    visible bigint;
    depth integer;
    kw_weight double precision := coalesce(nullif(current_setting('docchat.keyword_weight', true), '')::float8, 1.0);
    exact_limit integer := coalesce(nullif(current_setting('docchat.exact_search_limit', true), '')::int, 10000);
    semantic docchat.search_hit[] := '{}';
    keyword docchat.search_hit[] := '{}';
    n integer;
    top double precision;
BEGIN
    IF $1 IS NULL OR btrim($1) = '' THEN
        RAISE EXCEPTION 'docchat_search: query is empty'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'pass the question to search for';
    END IF;
    IF $2 IS NULL OR $2 < 1 OR $2 > 1000 THEN
        RAISE EXCEPTION 'docchat_search: k must be between 1 and 1000, got %', coalesce($2::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $3 IS NULL OR $3 < -1 OR $3 > 1 THEN
        RAISE EXCEPTION 'docchat_search: threshold must be between -1 and 1, got %', coalesce($3::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'similarity is cosine similarity; 0.3 keeps loosely related chunks';
    END IF;
    IF $7 IS NULL OR $7 < 0 OR $7 > 1000 THEN
        RAISE EXCEPTION 'docchat_search: images must be between 0 and 1000, got %', coalesce($7::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'images = n adds the n best pictures (CLIP) after the chunks';
    END IF;
    IF $5 IS NULL OR $5 NOT IN ('hybrid', 'semantic', 'keyword') THEN
        RAISE EXCEPTION 'docchat_search: unknown mode %', coalesce(quote_literal($5), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'mode is ''hybrid'', ''semantic'' or ''keyword''';
    END IF;
    IF $6 IS NOT NULL AND jsonb_typeof($6) <> 'object' THEN
        RAISE EXCEPTION 'docchat_search: filter must be a JSON object, got %', $6
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'e.g. {"mime_type": "application/pdf"}, {"document_ids": ["..."]} or any metadata keys';
    END IF;
    IF $6 ? 'document_ids' AND (jsonb_typeof($6 -> 'document_ids') <> 'array'
        OR EXISTS (SELECT FROM jsonb_array_elements($6 -> 'document_ids') e
                   WHERE jsonb_typeof(e) <> 'string' OR e #>> '{}' !~* '^[0-9a-f]{8}-?([0-9a-f]{4}-?){3}[0-9a-f]{12}$')) THEN
        RAISE EXCEPTION 'docchat_search: filter document_ids must be an array of document ids'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    m := docchat.model_for($4);
    IF $6 IS NOT NULL AND $6 <> '{}' THEN
        SELECT coalesce(array_agg(d.id), '{}') INTO ids
        FROM docchat.documents d WHERE d.owner = me AND d.model = m.name AND docchat.filter_matches(d, $6);
    END IF;
    -- Hybrid fuses deeper lists than it returns.
    depth := CASE WHEN $5 = 'hybrid' THEN greatest($2, 100) ELSE $2 END;
    -- The caller's chunks of the model: the keyword side's idf needs them all, the semantic side
    -- only whether they are more than exact_limit. Queries that depend on the owner are planned for
    -- the actual one (EXECUTE): the owner index for a small owner, a sequential scan for a large one.
    EXECUTE 'SELECT count(*) FROM (SELECT FROM docchat.chunks c
             WHERE c.owner = $1 AND c.model = $2 AND ($3 IS NULL OR c.document_id = ANY ($3)) LIMIT $4) mine'
        INTO visible USING me, m.name, ids, CASE WHEN $5 = 'semantic' THEN exact_limit + 1 END;

    IF $5 <> 'keyword' THEN
        q := @extschema@.docchat_embed($1, m.name);
        IF visible <= exact_limit THEN
            -- Not the index's expression (no cast to the dimension), so an exact scan of the caller's rows.
            EXECUTE 'SELECT coalesce(array_agg(ROW(h.document_id, h.chunk_index, h.score)::docchat.search_hit
                                               ORDER BY h.score DESC, h.document_id, h.chunk_index), ''{}'')
                     FROM (SELECT c.document_id, c.chunk_index, 1 - (c.embedding <=> $4) AS score
                           FROM docchat.chunks c
                           WHERE c.owner = $1 AND c.model = $2 AND ($3 IS NULL OR c.document_id = ANY ($3))
                           ORDER BY c.embedding <=> $4, c.document_id, c.chunk_index
                           LIMIT $5) h'
                INTO semantic USING me, m.name, ids, q, depth;
        ELSE
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
                INTO semantic USING q, depth, ids, me;
        END IF;
    END IF;

    IF $5 <> 'semantic' THEN
        EXECUTE $query$
            WITH terms AS (
                -- the query's lexemes under each configuration the caller's documents use
                SELECT l.language, t.lexeme, docchat.quote_lexeme(t.lexeme)::tsquery AS tsq
                FROM (SELECT DISTINCT d.language FROM docchat.documents d
                      WHERE d.owner = $1 AND d.model = $2 AND ($3 IS NULL OR d.id = ANY ($3))) l,
                     unnest(docchat.to_fts(l.language, $4)) t),
            hits AS (
                SELECT c.document_id, c.chunk_index, ts_rank(c.fts, t.tsq, 1) AS tf,
                       count(*) OVER (PARTITION BY t.language, t.lexeme) AS df
                FROM terms t JOIN docchat.chunks c ON c.fts @@ t.tsq AND c.language = t.language
                WHERE c.owner = $1 AND c.model = $2 AND ($3 IS NULL OR c.document_id = ANY ($3)))
            SELECT coalesce(array_agg(ROW(h.document_id, h.chunk_index, h.score)::docchat.search_hit
                                      ORDER BY h.score DESC, h.document_id, h.chunk_index), '{}')
            FROM (SELECT hits.document_id, hits.chunk_index,
                         sum(hits.tf::float8 * ln(1 + ($5 - hits.df + 0.5)::float8 / (hits.df + 0.5))) AS score
                  FROM hits GROUP BY hits.document_id, hits.chunk_index
                  ORDER BY score DESC, hits.document_id, hits.chunk_index
                  LIMIT $6) h
            $query$
            INTO keyword USING me, m.name, ids, $1, visible, depth;
    END IF;

    RETURN QUERY EXECUTE $query$
    WITH s AS (SELECT h.document_id, h.chunk_index, h.score, h.rank
               FROM unnest($1::docchat.search_hit[]) WITH ORDINALITY h(document_id, chunk_index, score, rank)),
    kw AS (SELECT h.document_id, h.chunk_index, h.score, h.rank
           FROM unnest($2::docchat.search_hit[]) WITH ORDINALITY h(document_id, chunk_index, score, rank)),
    -- MATERIALIZED: its keys are then plain columns, which row-level security lets the primary-key
    -- lookups use (a COALESCE over the full join is not leakproof, so it would force full scans).
    fused AS MATERIALIZED (
        SELECT coalesce(s.document_id, kw.document_id) AS document_id,
               coalesce(s.chunk_index, kw.chunk_index) AS chunk_index,
               s.score AS similarity, kw.score AS keyword_score,
               CASE $7 WHEN 'semantic' THEN s.score
                       WHEN 'keyword' THEN kw.score
                       ELSE coalesce(1.0 / (60 + s.rank), 0) + $8 * coalesce(1.0 / (60 + kw.rank), 0) END AS score
        FROM s FULL JOIN kw ON kw.document_id = s.document_id AND kw.chunk_index = s.chunk_index)
    SELECT f.document_id, d.filename, c.page, f.chunk_index, c.content,
           coalesce(ts_headline(c.language::regconfig, c.content, docchat.any_lexeme_query(c.language, $6),
                                'MaxWords=35, MinWords=15, MaxFragments=2'),
                    left(c.content, 200)),
           f.score::float8, coalesce(f.similarity, 1 - (c.embedding <=> $3)) AS similarity, f.keyword_score, d.metadata
    FROM fused f
    JOIN docchat.chunks c ON c.document_id = f.document_id AND c.chunk_index = f.chunk_index
    JOIN docchat.documents d ON d.id = f.document_id
    WHERE f.keyword_score IS NOT NULL OR coalesce(f.similarity, 1 - (c.embedding <=> $3)) >= $4
    ORDER BY f.score DESC, f.document_id, f.chunk_index
    LIMIT $5
    $query$ USING semantic, keyword, q, $3, $2, $1, $5, kw_weight;

    GET DIAGNOSTICS n = ROW_COUNT;
    -- A hot standby cannot write: its searches are not logged (docchat_health says so).
    IF coalesce(current_setting('docchat.log_searches', true), 'on') <> 'off' AND NOT pg_catalog.pg_is_in_recovery() THEN
        SELECT max(h.score) INTO top FROM unnest(semantic) h;
        INSERT INTO docchat.searches (query, mode, model, n_results, top_similarity, duration)
        VALUES (left($1, 2000), $5, m.name, n, top, clock_timestamp() - started);  -- a bounded record of any query
    END IF;
    -- Pictures come after the chunks: their CLIP similarities are on another scale.
    IF $7 > 0 THEN
        RETURN QUERY
        SELECT i.document_id, i.filename, i.page, NULL::integer, NULL::text, NULL::text,
               i.similarity, i.similarity, NULL::float8,
               d.metadata || jsonb_build_object('image', jsonb_build_object('image_index', i.image_index, 'name', i.name,
                                                 'mime_type', i.mime_type, 'width', i.width, 'height', i.height))
        FROM docchat_search_images($1, $7) i
        JOIN docchat.documents d ON d.id = i.document_id
        ORDER BY i.similarity DESC, i.document_id, i.image_index;
    END IF;
END
$$;
COMMENT ON FUNCTION docchat_search(text, integer, double precision, text, text, jsonb, integer) IS
    'The k best chunks for the query among the caller''s documents embedded with the model: hybrid (default), semantic or keyword ranking, optionally filtered by document ids, mime type, filename or metadata; images > 0 adds that many CLIP picture hits after the chunks';
