//! Projects, members and items.

use quorum_core::Role;
use quorum_core::item::{Item, ItemInput};
use quorum_core::schema::Schema;
use quorum_store::{ImportReport, LocalePolicy, Member, NewProject, Project, ProjectStats, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{App, AppError, Caller};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub name: String,
    #[serde(default)]
    pub instructions: String,
    pub schema: Value,
    /// Raters per item.
    #[serde(default = "default_overlap")]
    pub overlap: i32,
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: i64,
    #[serde(default)]
    pub locale_policy: LocalePolicy,
}

fn default_overlap() -> i32 {
    1
}

fn default_lease_seconds() -> i64 {
    30 * 60
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The user's name.
    pub user: String,
    pub role: Role,
    #[serde(default)]
    pub locales: Vec<String>,
    #[serde(default)]
    pub skills: Vec<String>,
}

/// One import row: its 1-based number and the item, or why it could not be read.
pub type ParsedRow = (u64, Result<ItemInput, String>);

/// A row the import refused, by its 1-based row (line, for JSONL and CSV) number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    pub row: u64,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportOutcome {
    pub created: u64,
    pub updated: u64,
    pub rejected: Vec<Rejected>,
}

impl<S: Store> App<S> {
    /// The caller's role in a project; administrators act as managers everywhere.
    pub async fn role_in(
        &self,
        caller: &Caller,
        project_id: i64,
    ) -> Result<(Project, Role), AppError> {
        let project = self.store().project(project_id).await?;
        let member = self.store().member(project_id, caller.user.id).await?;
        match (project, member) {
            (Some(project), _) if caller.user.is_admin => Ok((project, Role::Manager)),
            (Some(project), Some(member)) => Ok((project, member.role)),
            // A project the caller may not see is reported as missing, so ids leak nothing.
            _ => Err(AppError::NotFound("project")),
        }
    }

    async fn require(
        &self,
        caller: &Caller,
        project_id: i64,
        needed: Role,
    ) -> Result<Project, AppError> {
        let (project, role) = self.role_in(caller, project_id).await?;
        if role < needed {
            return Err(AppError::Forbidden(format!(
                "this needs the {} role in the project",
                needed.as_str()
            )));
        }
        Ok(project)
    }

    pub async fn create_project(
        &self,
        caller: &Caller,
        request: CreateProject,
    ) -> Result<Project, AppError> {
        if !caller.user.is_admin {
            return Err(AppError::Forbidden(
                "only administrators create projects".into(),
            ));
        }
        let name = request.name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(AppError::Invalid {
                message: "the name must be 1 to 200 characters".into(),
                details: json!({"field": "name"}),
            });
        }
        if !(1..=1000).contains(&request.overlap) {
            return Err(AppError::Invalid {
                message: "overlap must be 1 to 1000".into(),
                details: json!({"field": "overlap"}),
            });
        }
        if !(10..=7 * 24 * 3600).contains(&request.lease_seconds) {
            return Err(AppError::Invalid {
                message: "lease_seconds must be 10 to 604800".into(),
                details: json!({"field": "lease_seconds"}),
            });
        }
        let schema = Schema::parse(&request.schema).map_err(|e| AppError::Invalid {
            message: e.to_string(),
            details: json!({"field": format!("schema.{}", e.location)}),
        })?;
        let project = NewProject {
            name: name.to_string(),
            instructions: request.instructions,
            schema: serde_json::to_value(&schema).map_err(|e| AppError::Internal(Box::new(e)))?,
            overlap: request.overlap,
            lease_seconds: request.lease_seconds,
            locale_policy: request.locale_policy,
            created_by: caller.user.id,
        };
        Ok(self.store().create_project(project, self.now()).await?)
    }

    pub async fn project(&self, caller: &Caller, id: i64) -> Result<(Project, Role), AppError> {
        self.role_in(caller, id).await
    }

    pub async fn list_projects(
        &self,
        caller: &Caller,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Project>, AppError> {
        let member = if caller.user.is_admin {
            None
        } else {
            Some(caller.user.id)
        };
        Ok(self
            .store()
            .list_projects(member, after, limit.clamp(1, 500))
            .await?)
    }

    pub async fn add_member(
        &self,
        caller: &Caller,
        project_id: i64,
        request: AddMember,
    ) -> Result<Member, AppError> {
        self.require(caller, project_id, Role::Manager).await?;
        for locale in &request.locales {
            if !quorum_core::valid_locale(locale) {
                return Err(AppError::Invalid {
                    message: format!("`{locale}` is not a BCP 47 language tag such as ar-QA"),
                    details: json!({"field": "locales"}),
                });
            }
        }
        let user = self
            .store()
            .user_by_name(&request.user)
            .await?
            .ok_or_else(|| AppError::Invalid {
                message: format!("no user named `{}`", request.user),
                details: json!({"field": "user"}),
            })?;
        let member = Member {
            project_id,
            user_id: user.id,
            role: request.role,
            locales: request.locales,
            skills: request.skills,
        };
        self.store().upsert_member(member.clone()).await?;
        Ok(member)
    }

    /// Validates every row against the project's schema; writes all of them in one transaction
    /// only when none is rejected.
    pub async fn import_items(
        &self,
        caller: &Caller,
        project_id: i64,
        rows: Vec<ParsedRow>,
    ) -> Result<ImportOutcome, AppError> {
        let project = self.require(caller, project_id, Role::Manager).await?;
        let schema: Schema =
            serde_json::from_value(project.schema).map_err(|e| AppError::Internal(Box::new(e)))?;
        let mut items = Vec::with_capacity(rows.len());
        let mut rejected = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (row, parsed) in rows {
            let validated =
                parsed.and_then(|input| Item::validate(input, &schema).map_err(|e| e.to_string()));
            match validated {
                Ok(item) => {
                    if let Some(id) = &item.external_id
                        && !seen.insert(id.clone())
                    {
                        rejected.push(Rejected {
                            row,
                            error: format!("external_id `{id}` appears twice in this import"),
                        });
                        continue;
                    }
                    items.push(item);
                }
                Err(error) => rejected.push(Rejected { row, error }),
            }
        }
        if !rejected.is_empty() {
            return Ok(ImportOutcome {
                created: 0,
                updated: 0,
                rejected,
            });
        }
        let ImportReport { created, updated } = self
            .store()
            .import_items(project_id, items, self.now())
            .await?;
        Ok(ImportOutcome {
            created,
            updated,
            rejected,
        })
    }

    pub async fn stats(&self, caller: &Caller, project_id: i64) -> Result<ProjectStats, AppError> {
        let project = self.require(caller, project_id, Role::Reviewer).await?;
        Ok(self
            .store()
            .stats(project_id, project.overlap, self.now())
            .await?)
    }

    /// Checks the caller may export the project (managers only); returns it.
    pub async fn authorize_export(
        &self,
        caller: &Caller,
        project_id: i64,
    ) -> Result<Project, AppError> {
        self.require(caller, project_id, Role::Manager).await
    }
}

/// Parses an import body: a JSON array of items, or JSON Lines (one item per line; blank lines
/// skipped). Each entry keeps its 1-based row number (array position or line).
pub fn parse_items(body: &str) -> Result<Vec<ParsedRow>, AppError> {
    let trimmed = body.trim_start();
    if trimmed.starts_with('[') {
        let values: Vec<Value> = serde_json::from_str(trimmed).map_err(|e| AppError::Invalid {
            message: format!("the body is not a JSON array: {e}"),
            details: json!({"line": e.line(), "column": e.column()}),
        })?;
        Ok(values
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    (i + 1) as u64,
                    serde_json::from_value(v).map_err(|e| e.to_string()),
                )
            })
            .collect())
    } else {
        Ok(body
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                (
                    (i + 1) as u64,
                    serde_json::from_str(line).map_err(|e| e.to_string()),
                )
            })
            .collect())
    }
}
