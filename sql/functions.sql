-- SQL-language parts of the API; they call the Rust functions defined by the library.

CREATE FUNCTION docchat_embed(input text) RETURNS @extschema:vector@.vector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT docchat.embed_real(input)::@extschema:vector@.vector $$;
COMMENT ON FUNCTION docchat_embed(text) IS
    'Sentence embedding of the text with the configured model (all-MiniLM-L6-v2: 384 dimensions), unit length';

-- Many texts in one call: the model worker batches them (and other sessions' requests) together.
CREATE FUNCTION docchat_embed(inputs text[]) RETURNS @extschema:vector@.vector[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT coalesce(array_agg(e.embedding::@extschema:vector@.vector ORDER BY e.ord), '{}')
    FROM docchat.embed_real_many(inputs) e
$$;
COMMENT ON FUNCTION docchat_embed(text[]) IS
    'Embeddings of many texts, in order; a NULL text gives a NULL vector';

-- Best chunks first. The inner query takes the k nearest chunks the caller may see (the
-- iterative HNSW scan keeps going past other owners' rows), the outer one drops those
-- below the similarity threshold. Every search is logged to docchat.searches.
CREATE FUNCTION docchat_search(query text, k integer DEFAULT 8, threshold double precision DEFAULT 0.3)
RETURNS TABLE (document_id uuid, chunk_index integer, content text, similarity double precision,
               filename text, metadata jsonb)
LANGUAGE plpgsql VOLATILE
SET search_path = @extschema:vector@, pg_catalog, pg_temp
SET hnsw.iterative_scan = relaxed_order
AS $$
#variable_conflict use_column
DECLARE
    started timestamptz := clock_timestamp();
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
    q := @extschema@.docchat_embed($1);
    RETURN QUERY
        SELECT best.document_id, best.chunk_index, best.content, best.similarity, d.filename, d.metadata
        FROM (SELECT c.document_id, c.chunk_index, c.content, 1 - (c.embedding <=> q) AS similarity
              FROM docchat.chunks c
              ORDER BY c.embedding <=> q
              LIMIT $2) best
        JOIN docchat.documents d ON d.id = best.document_id
        WHERE best.similarity >= $3
        ORDER BY best.similarity DESC, best.document_id, best.chunk_index;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO docchat.searches (query, n_results, duration) VALUES ($1, n, clock_timestamp() - started);
END
$$;
COMMENT ON FUNCTION docchat_search(text, integer, double precision) IS
    'The k chunks most similar to the query among the caller''s documents, with cosine similarity ≥ threshold';
