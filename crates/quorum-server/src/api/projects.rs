//! Projects, members, item imports (streamed JSON Lines), stats and exports.

use super::*;
use crate::wire::projects::{
    CreateProject, MemberEnvelope, ProjectEnvelope, ProjectPage, ProjectWithRole, StatsEnvelope,
};

/// Create a project (administrators); the creator becomes its manager.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = CreateProject,
    responses((status = 201, body = ProjectEnvelope), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 422, response = ErrorBody)))]
pub(super) async fn create_project<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> Result<(StatusCode, Json<ProjectEnvelope>), ApiError> {
    let request: CreateProject = parse_body(&body)?;
    let project = state.app.create_project(&caller, request.into()).await?;
    Ok((StatusCode::CREATED, Json(project.into())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct Page {
    /// Projects with a larger id: the next page starts after the last id of this one.
    #[serde(default)]
    after: i64,
    /// 1 to 500.
    #[serde(default = "default_limit")]
    #[param(default = 100, maximum = 500)]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

/// List the projects the caller can see (cursor pagination).
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", params(Page),
    responses((status = 200, body = ProjectPage), (status = 401, response = ErrorBody)))]
pub(super) async fn list_projects<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Query(page): Query<Page>,
) -> Result<Json<ProjectPage>, ApiError> {
    let limit = page.limit.clamp(1, 500);
    let projects = state.app.list_projects(&caller, page.after, limit).await?;
    let next = if projects.len() as i64 == limit {
        projects.last().map(|p| p.id)
    } else {
        None
    };
    Ok(Json(ProjectPage {
        projects: projects.into_iter().map(Into::into).collect(),
        next_after: next,
    }))
}

/// A project and the caller's role in it.
#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects", params(("id" = i64, Path, description = "The project")),
    responses((status = 200, body = ProjectWithRole), (status = 401, response = ErrorBody),
        (status = 404, response = ErrorBody)))]
pub(super) async fn get_project<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<ProjectWithRole>, ApiError> {
    let (project, role) = state.app.project(&caller, id).await?;
    Ok(Json(ProjectWithRole {
        project: project.into(),
        role,
    }))
}

/// Add or update a member (managers).
#[utoipa::path(post, path = "/api/v1/projects/{id}/members", tag = "projects", params(("id" = i64, Path, description = "The project")),
    request_body = AddMember,
    responses((status = 201, body = MemberEnvelope), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody),
        (status = 422, response = ErrorBody)))]
pub(super) async fn add_member<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<(StatusCode, Json<MemberEnvelope>), ApiError> {
    let request: AddMember = parse_body(&body)?;
    let member = state.app.add_member(&caller, id, request).await?;
    Ok((StatusCode::CREATED, Json(member.into())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ImportQuery {
    /// `dpo`: preference pairs `{id, prompt, chosen, rejected}` per line; the chosen side
    /// becomes the item's gold answer, on a side drawn from a hash of the id.
    #[param(pattern = "^dpo$")]
    format: Option<String>,
}

/// Import items: a JSON array, JSON Lines, CSV or Parquet (managers).
///
/// All rows or none: any rejected row is reported (422, code `rows_rejected`,
/// `details.rejected[]` with row and error) and nothing is written. JSON Lines is read as it
/// arrives, line by line, so a large import never holds its whole body in memory.
#[utoipa::path(post, path = "/api/v1/projects/{id}/items", tag = "items", params(("id" = i64, Path, description = "The project"), ImportQuery),
    request_body(content(
        (Vec<quorum_core::item::ItemInput> = "application/json"),
        (String = "application/x-ndjson"),
        (String = "text/csv"),
        (Vec<u8> = "application/vnd.apache.parquet"))),
    responses((status = 200, description = "Counts of created and updated items", body = ImportOutcome),
        (status = 401, response = ErrorBody), (status = 403, response = ErrorBody),
        (status = 404, response = ErrorBody), (status = 413, response = ErrorBody),
        (status = 422, response = ErrorBody)))]
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
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let csv = content_type.starts_with("text/csv");
    let parquet = content_type.starts_with("application/vnd.apache.parquet");
    if parquet && dpo {
        return Err(ApiError::invalid(
            "preference pairs are JSON Lines; a Parquet body is items",
            json!({"field": "format"}),
        ));
    }
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
                Some(b'{') if !csv && !dpo && !parquet => (streaming, scanned) = (Some(true), 0),
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
        // Read whole, into the session begun above (its checks are done once).
        if parquet {
            session.push_parquet(pending)?;
        } else {
            let text = std::str::from_utf8(&pending).map_err(|_| not_utf8(0))?;
            let format = if dpo {
                ImportFormat::Dpo
            } else if csv {
                ImportFormat::Csv
            } else {
                ImportFormat::Json
            };
            session.push_text(format, text)?;
        }
        state.app.finish_import(session).await?
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
    Ok(Json(outcome).into_response())
}

/// Items by state, responses, active leases, raters (reviewers and managers).
#[utoipa::path(get, path = "/api/v1/projects/{id}/stats", tag = "projects", params(("id" = i64, Path, description = "The project")),
    responses((status = 200, body = StatsEnvelope, headers(("quorum-replica-lag-ms" = i64, description = "Read from a read replica this many milliseconds behind the primary (absent when the primary answered)"))), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody)))]
pub(super) async fn stats<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<(AppendHeaders<ReplicaLag>, Json<StatsEnvelope>), ApiError> {
    let app = state.app.analytics();
    Ok((
        replica_lag(&app),
        Json(app.stats(&caller, id).await?.into()),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ExportQuery {
    #[serde(default = "default_format")]
    #[param(schema_with = export_formats)]
    format: String,
    /// The file `dpo`, `sft` and `consensus` come in: `jsonl` (the default) or `parquet`.
    #[param(schema_with = aggregate_files)]
    file: Option<String>,
}

/// The files an aggregate export comes in, as [`Export::parse`] reads them.
fn aggregate_files() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(Export::FILES.iter().copied()))
        .default(Some(Value::from("jsonl")))
        .build()
}

/// The export formats, as [`Export::parse`] reads them.
fn export_formats() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(Export::NAMES.iter().copied()))
        .default(Some(Value::from("jsonl")))
        .build()
}

fn default_format() -> String {
    "jsonl".into()
}

/// Export a project (managers).
///
/// Every response, streamed (`jsonl`, `csv`, `parquet`); the preference pairs of a pairwise
/// project (`dpo`: id, prompt, chosen, rejected, confidence, votes, source — votes, else the
/// gold preference); conversations from a free-text question (`sft`: id, messages, user); or
/// each item's consensus per question (`consensus`: item_id, external_id, question, answer,
/// confidence, method, responses). The last three are JSON Lines, or Parquet with
/// `file=parquet` (`prompt` and `messages` as list<struct<role, content>>; the README's Arrow
/// schema).
#[utoipa::path(get, path = "/api/v1/projects/{id}/export", tag = "export", params(("id" = i64, Path, description = "The project"), ExportQuery),
    responses((status = 200, description = "JSON Lines, CSV or Parquet (responses streamed)", headers(("quorum-replica-lag-ms" = i64, description = "Read from a read replica this many milliseconds behind the primary (absent when the primary answered)")),
            content((String = "application/x-ndjson"), (String = "text/csv"),
                (Vec<u8> = "application/vnd.apache.parquet"))),
        (status = 401, response = ErrorBody), (status = 403, response = ErrorBody),
        (status = 404, response = ErrorBody), (status = 422, response = ErrorBody)))]
pub(super) async fn export<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let export = Export::parse(&query.format, query.file.as_deref())?;
    let app = state.app.analytics();
    let lag = replica_lag(&app);
    let body = match export {
        Export::Responses(format) => {
            let (pages, _) = app.export_responses(&caller, id, format).await?;
            let pages = stream::unfold(pages, |mut pages| async move {
                match pages.next_page().await {
                    Ok(Some(text)) => Some((Ok::<Bytes, std::io::Error>(Bytes::from(text)), pages)),
                    Ok(None) => None,
                    Err(e) => Some((Err(std::io::Error::other(e.to_string())), pages)),
                }
            });
            Body::from_stream(pages)
        }
        Export::Aggregate(aggregate, file) => {
            // These read and aggregate the whole project (an analysis); then the rows are
            // written out a page at a time.
            let pages = state
                .app
                .analysis(async move {
                    app.export_aggregate_pages(&caller, id, aggregate, file)
                        .await
                })
                .await?;
            let pages = stream::iter(pages_of(pages));
            Body::from_stream(pages)
        }
    };
    let mut response = (lag, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(export.content_type()),
    );
    Ok(response)
}

/// An aggregate export's pages, as a body's chunks.
fn pages_of(
    mut pages: quorum_app::export::AggregatePages,
) -> impl Iterator<Item = Result<Bytes, std::io::Error>> {
    std::iter::from_fn(move || match pages.next_page() {
        Ok(Some(bytes)) => Some(Ok(Bytes::from(bytes))),
        Ok(None) => None,
        Err(e) => Some(Err(std::io::Error::other(e.to_string()))),
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct CardQuery {
    /// The export the card describes (as `export`'s `format`).
    #[serde(default = "default_format")]
    #[param(schema_with = export_formats)]
    format: String,
    /// The file of an aggregate export (as `export`'s `file`).
    #[param(schema_with = aggregate_files)]
    file: Option<String>,
    /// The licence id for the card's front matter (e.g. `cc-by-4.0`); `other` when absent.
    #[serde(default = "default_license")]
    #[param(default = "other")]
    license: String,
}

fn default_license() -> String {
    "other".into()
}

/// A dataset card for an export (managers).
///
/// Markdown with YAML front matter as the Hugging Face Hub reads it (licence, languages of the
/// items, size category, tags), then how the data was collected, the raters per locale and
/// their agreement. Save it as `README.md` next to the export saved as `data.jsonl` (or
/// `data.parquet`).
#[utoipa::path(get, path = "/api/v1/projects/{id}/card", tag = "export",
    params(("id" = i64, Path, description = "The project"), CardQuery),
    responses((status = 200, description = "The card", content((String = "text/markdown")), headers(("quorum-replica-lag-ms" = i64, description = "Read from a read replica this many milliseconds behind the primary (absent when the primary answered)"))),
        (status = 401, response = ErrorBody), (status = 403, response = ErrorBody),
        (status = 404, response = ErrorBody), (status = 422, response = ErrorBody)))]
pub(super) async fn card<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Query(query): Query<CardQuery>,
) -> Result<Response, ApiError> {
    let export = Export::parse(&query.format, query.file.as_deref())?;
    let app = state.app.analytics();
    let lag = replica_lag(&app);
    let card = state
        .app
        .analysis(async move {
            app.dataset_card(&caller, id, export, &query.license, None)
                .await
        })
        .await?;
    Ok((
        lag,
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
        card,
    )
        .into_response())
}
