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
