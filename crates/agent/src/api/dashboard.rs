//! The dashboard: server-rendered pages, no JavaScript framework, no CDN.

use std::sync::Arc;

use axum::Router;

use super::Api;

/// The dashboard's routes.
pub fn router(_api: Arc<Api>) -> Router<Arc<Api>> {
    Router::new()
}
