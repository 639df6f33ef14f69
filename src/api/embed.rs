//! docchat_embed's Rust halves: the SQL functions in sql/functions.sql cast their real[] to vectors.

use pgrx::prelude::*;

#[pg_schema]
mod docchat {
    use crate::embedding::models::Model;
    use crate::embedding::text::{embed_query, embed_texts};
    use crate::pg::error::OrRaise;
    use pgrx::prelude::*;

    /// The embedding as real[]; `docchat_embed(text, model)` casts it to a vector.
    #[pg_extern(stable, parallel_safe)]
    fn embed_real(input: Option<&str>, model: Option<&str>) -> Option<Vec<f32>> {
        let input = input?;
        let model = Model::resolve(model);
        Some(embed_query(&model, input).or_raise(None))
    }

    /// Embeddings of many texts in one call, one row per input (NULL in, NULL out);
    /// `docchat_embed(text[], model)` folds them into a vector[].
    #[pg_extern(stable, parallel_safe)]
    fn embed_real_many(
        inputs: Option<Vec<Option<String>>>,
        model: Option<&str>,
    ) -> TableIterator<'static, (name!(ord, i32), name!(embedding, Option<Vec<f32>>))> {
        let Some(inputs) = inputs else { return TableIterator::new(Vec::new()) };
        let model = Model::resolve(model);
        let present: Vec<&str> = inputs.iter().flatten().map(String::as_str).collect();
        let mut vectors = embed_texts(&model, &present).or_raise(None).into_iter();
        let rows: Vec<_> = inputs.iter().enumerate().map(|(i, t)| (i as i32 + 1, t.as_ref().and_then(|_| vectors.next()))).collect();
        TableIterator::new(rows)
    }
}
