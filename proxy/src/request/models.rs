//! `GET /v1/models` and `GET /v1/models/{id}`, answered by the gateway: the models the routes
//! matching the request serve (each provider's configured model), in OpenAI's shape. A
//! provider's own model list would name models the gateway does not route, and would need the
//! gateway's key to read.

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use serde_json::json;

use crate::openai::error::ProxyError;
use crate::route::served_models;
use crate::state::RouteTable;

/// The list, or the one model the path names (`404 model_not_found` when no route serves it).
pub fn answer(
    table: &RouteTable,
    parts: &http::request::Parts,
) -> Result<Response<Bytes>, ProxyError> {
    let served = served_models(table, parts);
    if served.models.is_empty() && served.hidden {
        return Err(super::unauthorized(
            "an API key is required: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
        ));
    }
    let models = served.models;
    let object = |(id, owner): &(std::sync::Arc<str>, &str)| {
        // `created` is when the model was released, which no config says: 0, as OpenAI-compatible
        // servers that do not know it answer.
        json!({ "id": &**id, "object": "model", "created": 0, "owned_by": owner })
    };
    let path = parts.uri.path();
    let body = match path.split_once("/v1/models/") {
        Some((_, id)) if !id.is_empty() => {
            // Model ids may hold `:` or `@`, which clients escape.
            let id = percent_encoding::percent_decode_str(id).decode_utf8_lossy();
            let model = models
                .iter()
                .find(|(known, _)| **known == *id)
                .ok_or_else(|| super::model_not_found(&id))?;
            object(model)
        }
        _ => json!({ "object": "list", "data": models.iter().map(object).collect::<Vec<_>>() }),
    };
    let mut response = Response::new(Bytes::from(body.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
