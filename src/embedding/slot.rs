//! A model this session loaded itself (when there is no model worker), kept until the setting
//! that names it changes: one pattern for the text model, its tokenizer and the CLIP towers.
use docchat_core::DocError;
use parking_lot::Mutex;

pub struct SessionSlot<K, T>(Mutex<Option<(K, T)>>);

impl<K: PartialEq, T> SessionSlot<K, T> {
    pub const fn new() -> Self {
        SessionSlot(Mutex::new(None))
    }

    /// Runs `f` with the value loaded for `key`, loading it (dropping the old one first: models
    /// are large) when the slot holds another key or nothing.
    pub fn with<R>(
        &self,
        key: K,
        load: impl FnOnce(&K) -> Result<T, DocError>,
        f: impl FnOnce(&mut T) -> Result<R, DocError>,
    ) -> Result<R, DocError> {
        let mut slot = self.0.lock();
        if slot.as_ref().is_none_or(|(k, _)| *k != key) {
            *slot = None;
            let value = load(&key)?;
            *slot = Some((key, value));
        }
        f(&mut slot.as_mut().expect("loaded above").1)
    }

    /// What the slot holds, if anything.
    pub fn peek<R>(&self, f: impl FnOnce(&K, &T) -> R) -> Option<R> {
        self.0.lock().as_ref().map(|(k, v)| f(k, v))
    }
}
