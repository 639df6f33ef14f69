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

-- Best chunks first. The inner query takes the k nearest chunks the caller may see (the
-- iterative HNSW scan keeps going past other owners' rows), the outer one drops those
-- below the similarity threshold. Every search is logged to docchat.searches.
CREATE FUNCTION docchat_search(query text, k integer DEFAULT 8, threshold double precision DEFAULT 0.3,
                               model text DEFAULT NULL)
RETURNS TABLE (document_id uuid, chunk_index integer, content text, similarity double precision,
               filename text, metadata jsonb)
LANGUAGE plpgsql VOLATILE
SET search_path = @extschema:vector@, pg_catalog, pg_temp
SET hnsw.iterative_scan = relaxed_order
AS $$
#variable_conflict use_column
DECLARE
    started timestamptz := clock_timestamp();
    m docchat.models;
    q @extschema:vector@.vector;
    n integer;
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
    m := docchat.model_for($4);
    q := @extschema@.docchat_embed($1, m.name);
    -- The model's name and dimension are spelled out so the planner matches its partial index.
    RETURN QUERY EXECUTE format($query$
        SELECT best.document_id, best.chunk_index, best.content, best.similarity, d.filename, d.metadata
        FROM (SELECT c.document_id, c.chunk_index, c.content, 1 - (c.embedding::vector(%1$s) <=> $1) AS similarity
              FROM docchat.chunks c
              WHERE c.model = %2$L
              ORDER BY c.embedding::vector(%1$s) <=> $1
              LIMIT $2) best
        JOIN docchat.documents d ON d.id = best.document_id
        WHERE best.similarity >= $3
        ORDER BY best.similarity DESC, best.document_id, best.chunk_index
        $query$, m.dimension, m.name)
        USING q, $2, $3;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO docchat.searches (query, n_results, duration) VALUES ($1, n, clock_timestamp() - started);
END
$$;
COMMENT ON FUNCTION docchat_search(text, integer, double precision, text) IS
    'The k chunks most similar to the query among the caller''s documents, with cosine similarity ≥ threshold, searched with the model their chunks were embedded with';
