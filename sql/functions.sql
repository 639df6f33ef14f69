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
AS $$
    WITH gone AS (DELETE FROM docchat.documents d WHERE d.id = $1 AND d.owner = docchat.current_owner() RETURNING 1)
    SELECT count(*) > 0 FROM gone
$$;
COMMENT ON FUNCTION docchat_delete(uuid) IS 'Deletes the caller''s document and its chunks; false when it has none with that id';
