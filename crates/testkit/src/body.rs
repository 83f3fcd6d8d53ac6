//! The receiver's response body: whole, or cut short after part of what its head promised.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::reply::AfterCut;

/// Ends a cut body with an error, which makes hyper drop the connection.
#[derive(Debug, thiserror::Error)]
#[error("response body cut short on purpose")]
pub(crate) struct Cut;

#[derive(Debug)]
pub(crate) enum ReplyBody {
    /// The whole body (taken when sent).
    Whole(Option<Bytes>),
    /// `data` of `promised` bytes, then `then`.
    Cut {
        data: Option<Bytes>,
        promised: u64,
        then: AfterCut,
    },
}

impl ReplyBody {
    pub(crate) fn whole(data: Bytes) -> ReplyBody {
        ReplyBody::Whole((!data.is_empty()).then_some(data))
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        match self.get_mut() {
            ReplyBody::Whole(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ReplyBody::Cut { data, then, .. } => match data.take() {
                Some(d) => Poll::Ready(Some(Ok(Frame::data(d)))),
                None => match then {
                    AfterCut::Close => Poll::Ready(Some(Err(Cut))),
                    // Never woken: the connection task is dropped when the receiver stops.
                    AfterCut::Hold => Poll::Pending,
                },
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ReplyBody::Whole(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReplyBody::Whole(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ReplyBody::Cut { promised, .. } => SizeHint::with_exact(*promised),
        }
    }
}
