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

-- CLIP (docchat.clip_model_dir): pictures and descriptions in one 512-dimensional space.
CREATE FUNCTION docchat_embed_image(image bytea) RETURNS @extschema:vector@.vector(512)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT docchat.clip_image_real(image)::@extschema:vector@.vector(512) $$;
COMMENT ON FUNCTION docchat_embed_image(bytea) IS
    'CLIP embedding of an image (PNG, JPEG, GIF, BMP, TIFF, WebP), unit length, with CLIP''s own preprocessing';

CREATE FUNCTION docchat_embed_clip_text(input text) RETURNS @extschema:vector@.vector(512)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT docchat.clip_text_real(input)::@extschema:vector@.vector(512) $$;
COMMENT ON FUNCTION docchat_embed_clip_text(text) IS
    'CLIP text embedding (same space as docchat_embed_image), unit length; 77 tokens at most, the rest is cut';

-- Text-to-image search over the caller's pictures (row-level security applies). An exact scan
-- of the caller's own vectors: no rows of other owners can crowd them out of an index scan.
CREATE FUNCTION docchat_search_images(query text, k integer DEFAULT 8)
RETURNS TABLE (document_id uuid, image_index integer, filename text, page integer, name text,
               mime_type text, width integer, height integer, similarity double precision)
LANGUAGE plpgsql STABLE
SET search_path = @extschema:vector@, pg_catalog, pg_temp
AS $$
DECLARE
    q @extschema:vector@.vector(512);
BEGIN
    IF query IS NULL OR btrim(query) = '' THEN
        RAISE EXCEPTION 'docchat_search_images: query is empty'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'describe the picture to find';
    END IF;
    IF k IS NULL OR k < 1 OR k > 1000 THEN
        RAISE EXCEPTION 'docchat_search_images: k must be between 1 and 1000, got %', coalesce(k::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    q := docchat.clip_text_real(query)::@extschema:vector@.vector(512);
    RETURN QUERY
    WITH mine AS MATERIALIZED (
        SELECT i.document_id, i.image_index, i.page, i.name, i.mime_type, i.width, i.height,
               1 - (i.embedding OPERATOR(@extschema:vector@.<=>) q) AS similarity
        FROM docchat.images i
        WHERE i.owner = docchat.current_owner()
    )
    SELECT m.document_id, m.image_index, d.filename, m.page, m.name, m.mime_type, m.width, m.height, m.similarity
    FROM (SELECT * FROM mine ORDER BY mine.similarity DESC, mine.document_id, mine.image_index LIMIT k) m
    JOIN docchat.documents d ON d.id = m.document_id
    ORDER BY m.similarity DESC, m.document_id, m.image_index;
END
$$;
COMMENT ON FUNCTION docchat_search_images(text, integer) IS
    'The caller''s k pictures closest to the description (CLIP), best first';
