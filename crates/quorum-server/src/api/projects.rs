//! Projects, members, item imports (streamed JSON Lines), stats and exports.

use super::*;

pub(super) async fn create_project<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: CreateProject = parse_body(&body)?;
    let project = state.app.create_project(&caller, request).await?;
    Ok((StatusCode::CREATED, Json(json!({"project": project}))))
}

#[derive(Debug, Deserialize)]
pub(super) struct Page {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

pub(super) async fn list_projects<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let limit = page.limit.clamp(1, 500);
    let projects = state.app.list_projects(&caller, page.after, limit).await?;
    let next = if projects.len() as i64 == limit {
        projects.last().map(|p| p.id)
    } else {
        None
    };
    Ok(Json(json!({"projects": projects, "next_after": next})))
}

pub(super) async fn get_project<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let (project, role) = state.app.project(&caller, id).await?;
    Ok(Json(json!({"project": project, "role": role})))
}

pub(super) async fn add_member<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: AddMember = parse_body(&body)?;
    let member = state.app.add_member(&caller, id, request).await?;
    Ok((StatusCode::CREATED, Json(json!({"member": member}))))
}

/// Imports a JSON array, JSON Lines or CSV body. JSON Lines is read as it arrives, line by
/// line, so a large import never holds its whole body in memory.
#[derive(Debug, Deserialize)]
pub(super) struct ImportQuery {
    /// `dpo`: preference pairs `{id, prompt, chosen, rejected}` per line.
    format: Option<String>,
}

pub(super) async fn import_items<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Query(query): Query<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let dpo = match query.format.as_deref() {
        None => false,
        Some("dpo") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                format!("unknown import format `{other}`; leave it out, or use dpo"),
                json!({"field": "format"}),
            ));
        }
    };
    let too_large = |limit: usize, what: &str| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("{what} are limited to {limit} bytes"),
        )
    };
    let not_utf8 = |line: u64| ApiError::invalid("the body is not UTF-8", json!({"line": line}));
    let csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    let mut session = state.app.begin_import(&caller, id).await?;
    let mut chunks = body.into_data_stream();
    let mut pending: Vec<u8> = Vec::new();
    // Bytes of `pending` already looked at: every chunk is scanned once, never again.
    let mut scanned = 0usize;
    let mut received = 0usize;
    let mut line = 0u64;
    // Until the first non-blank byte tells, the body may be JSON Lines (streamed) or a format
    // that is read whole (a JSON array, CSV, preference pairs).
    let mut streaming = None::<bool>;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::invalid(format!("the body could not be read: {e}"), Value::Null)
        })?;
        received += chunk.len();
        if received > IMPORT_LIMIT {
            return Err(too_large(IMPORT_LIMIT, "imports"));
        }
        pending.extend_from_slice(&chunk);
        if streaming.is_none() {
            match pending[scanned..].iter().find(|b| !b.is_ascii_whitespace()) {
                // Lines are counted from the start: blank lines before the first item count.
                Some(b'{') if !csv && !dpo => (streaming, scanned) = (Some(true), 0),
                Some(_) => streaming = Some(false),
                None => scanned = pending.len(),
            }
        }
        if streaming != Some(true) {
            if received > WHOLE_IMPORT_LIMIT {
                return Err(too_large(
                    WHOLE_IMPORT_LIMIT,
                    "JSON array, CSV and preference-pair imports (read whole; send JSON Lines for more)",
                ));
            }
            continue;
        }
        let mut start = 0;
        while let Some(end) = pending[scanned..].iter().position(|&b| b == b'\n') {
            let end = scanned + end;
            line += 1;
            let text = std::str::from_utf8(&pending[start..end]).map_err(|_| not_utf8(line))?;
            session.push_json_line(line, text);
            start = end + 1;
            scanned = start;
        }
        pending.drain(..start);
        scanned = pending.len();
    }
    let outcome = if streaming == Some(true) {
        line += 1;
        let text = std::str::from_utf8(&pending).map_err(|_| not_utf8(line))?;
        session.push_json_line(line, text);
        state.app.finish_import(session).await?
    } else {
        let text = std::str::from_utf8(&pending).map_err(|_| not_utf8(0))?;
        let format = if dpo {
            ImportFormat::Dpo
        } else if csv {
            ImportFormat::Csv
        } else {
            ImportFormat::Json
        };
        state.app.import(&caller, id, format, text).await?
    };
    if !outcome.rejected.is_empty() {
        return Err(rows_rejected(
            &outcome.rejected,
            outcome.rejected_total,
            "rows",
            "imported",
        ));
    }
    state
        .metrics
        .items_imported
        .fetch_add(outcome.created + outcome.updated, Ordering::Relaxed);
    Ok((StatusCode::OK, Json(json!(outcome))).into_response())
}

pub(super) async fn stats<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"stats": state.app.stats(&caller, id).await?})))
}

#[derive(Debug, Deserialize)]
pub(super) struct ExportQuery {
    #[serde(default = "default_format")]
    format: String,
}

fn default_format() -> String {
    "jsonl".into()
}

pub(super) async fn export<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let export = Export::parse(&query.format)?;
    let body = match export {
        Export::Responses(format) => {
            let (pages, _) = state.app.export_responses(&caller, id, format).await?;
            let pages = stream::unfold(pages, |mut pages| async move {
                match pages.next_page().await {
                    Ok(Some(text)) => Some((Ok::<Bytes, std::io::Error>(Bytes::from(text)), pages)),
                    Ok(None) => None,
                    Err(e) => Some((Err(std::io::Error::other(e.to_string())), pages)),
                }
            });
            Body::from_stream(pages)
        }
        aggregate => {
            // These read and aggregate the whole project: an analysis.
            let app = state.app.clone();
            let lines = state
                .app
                .analysis(async move { app.export_aggregate(&caller, id, aggregate).await })
                .await?;
            let mut text = String::new();
            for line in lines {
                text.push_str(&line.to_string());
                text.push('\n');
            }
            Body::from(text)
        }
    };
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(export.content_type()),
    );
    Ok(response)
}
