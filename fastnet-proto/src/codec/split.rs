//! Decoders whose configuration many streams share: each stream keeps only
//! a small state, the configuration is written once.

use super::{CobsDecoder, Decoded, Decoder, FixedDecoder, RawDecoder};
use crate::DecodeError;

/// A [`Decoder`] split in two: the configuration (`&self`, never changed by
/// decoding) and one stream's [`State`](Self::State), which is all a stream
/// has to keep. A server with thousands of connections then holds its
/// codec's configuration once instead of once per connection
/// ([`SharedDecoder`] does that for any of these; for the built-in codecs
/// the configuration is up to about 200 bytes and the state 16 to 32).
///
/// `decode_with` follows [`Decoder::decode`]'s contract for the stream
/// whose state it is given; a state must be used with the decoder that
/// made it (never a panic otherwise, but frames may be wrong; an
/// [`AnyDecoder`](super::AnyDecoder) given another kind's state starts a
/// fresh stream).
pub trait SplitDecoder: Decoder {
    /// What one stream keeps between calls.
    type State: Clone + core::fmt::Debug;

    /// The state of a stream that has not started.
    fn new_state(&self) -> Self::State;

    /// [`Decoder::decode`] for the stream whose state is `state`.
    fn decode_with(&self, state: &mut Self::State, src: &mut [u8]) -> Result<Decoded, DecodeError>;

    /// [`Decoder::is_skipping`] for the stream whose state is `state`.
    fn is_skipping_with(&self, state: &Self::State) -> bool;
}

/// The small decoders are their own state: a copy of one is a stream.
macro_rules! own_state {
    ($($ty:ty),*) => {$(
        impl SplitDecoder for $ty {
            type State = $ty;

            fn new_state(&self) -> $ty {
                let mut fresh = *self;
                fresh.reset();
                fresh
            }

            #[inline(always)]
            fn decode_with(&self, state: &mut $ty, src: &mut [u8]) -> Result<Decoded, DecodeError> {
                state.decode(src)
            }

            fn is_skipping_with(&self, state: &$ty) -> bool {
                state.is_skipping()
            }
        }
    )*};
}

own_state!(RawDecoder, FixedDecoder, CobsDecoder);

#[cfg(all(feature = "alloc", target_has_atomic = "ptr"))]
pub use shared::SharedDecoder;

#[cfg(all(feature = "alloc", target_has_atomic = "ptr"))]
mod shared {
    use alloc::sync::Arc;

    use super::SplitDecoder;
    use crate::codec::{Decoded, Decoder};
    use crate::DecodeError;

    /// A [`SplitDecoder`] whose configuration every clone shares (one
    /// [`Arc`]), each clone keeping only its own stream's state: clone one
    /// per connection and each holds a pointer and the state.
    ///
    /// ```
    /// use fastnet_proto::codec::{CodecSpec, Decoded, Decoder, SharedDecoder};
    ///
    /// let template = SharedDecoder::new(CodecSpec::lines(1024).decoder().unwrap());
    /// let (mut a, mut b) = (template.clone(), template.clone());
    /// assert!(matches!(a.decode(&mut b"one\n".to_vec()), Ok(Decoded::Frame(_))));
    /// assert!(matches!(b.decode(&mut b"tw".to_vec()), Ok(Decoded::NeedMore { .. })));
    /// assert!(core::mem::size_of_val(&a) <= 48);
    /// ```
    #[derive(Debug)]
    pub struct SharedDecoder<D: SplitDecoder> {
        config: Arc<D>,
        state: D::State,
    }

    impl<D: SplitDecoder> SharedDecoder<D> {
        /// A decoder for a fresh stream, with `decoder`'s configuration.
        pub fn new(decoder: D) -> Self {
            let state = decoder.new_state();
            SharedDecoder {
                config: Arc::new(decoder),
                state,
            }
        }

        /// The shared configuration.
        pub fn config(&self) -> &D {
            &self.config
        }
    }

    impl<D: SplitDecoder> Clone for SharedDecoder<D> {
        /// Another stream at the same point (clone a fresh one for a new
        /// stream); the configuration is shared, not copied.
        fn clone(&self) -> Self {
            SharedDecoder {
                config: Arc::clone(&self.config),
                state: self.state.clone(),
            }
        }
    }

    impl<D: SplitDecoder> Decoder for SharedDecoder<D> {
        #[inline(always)]
        fn decode(&mut self, src: &mut [u8]) -> Result<Decoded, DecodeError> {
            self.config.decode_with(&mut self.state, src)
        }

        fn reset(&mut self) {
            self.state = self.config.new_state();
        }

        fn max_frame(&self) -> usize {
            self.config.max_frame()
        }

        fn is_skipping(&self) -> bool {
            self.config.is_skipping_with(&self.state)
        }
    }
}
