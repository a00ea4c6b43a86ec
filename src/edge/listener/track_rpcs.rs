//! The tower layer that tells a connection's deadlines when its rpcs are open.

use super::conn::{ConnInfo, RpcGuard};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A tower layer for the server that counts each [`Conn`](super::Conn)'s open rpcs, from the start of a
/// request to the end (or drop) of its response body, for the connection's deadlines. Requests
/// that did not come through a [`Conn`](super::Conn) pass untouched. It also puts the connection's
/// [`TcpConnectInfo`](tonic::transport::server::TcpConnectInfo) in the request's extensions, so that `tonic::Request::remote_addr` works.
#[derive(Clone, Copy, Debug, Default)]
pub struct TrackRpcsLayer;

impl<S> tower::Layer<S> for TrackRpcsLayer {
    type Service = TrackRpcs<S>;

    fn layer(&self, inner: S) -> TrackRpcs<S> {
        TrackRpcs { inner }
    }
}

/// The service [`TrackRpcsLayer`] makes.
#[derive(Clone, Debug)]
pub struct TrackRpcs<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for TrackRpcs<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<TrackedBody<ResBody>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let info = request.extensions().get::<ConnInfo>().cloned();
        let guard = info.map(|info| {
            let guard = RpcGuard::new(&info.activity);
            request.extensions_mut().insert(info.tcp);
            guard
        });
        TrackedFuture {
            inner: self.inner.call(request),
            guard,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`TrackRpcs`]: the rpc counts as open while it runs.
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        guard: Option<RpcGuard>,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                let guard = this.guard.take();
                Poll::Ready(result.map(|response| {
                    response.map(|body| TrackedBody {
                        inner: body,
                        _guard: guard,
                    })
                }))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body of [`TrackRpcs`]: the rpc counts as open until it is dropped.
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        _guard: Option<RpcGuard>,
    }
}

impl<B: http_body::Body> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
