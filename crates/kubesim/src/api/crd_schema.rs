//! Validation of custom resources against their CRD version's
//! `openAPIV3Schema`: pruning of unknown fields, schema defaults, structural
//! validation and `x-kubernetes-validations` CEL rules, answered with the
//! real server's 422 `Invalid` Status (see [`crate::schema`]).
//!
//! Upstream: `apiextensions-apiserver/pkg/registry/customresource/strategy.go`
//! (`Validate`, `ValidateUpdate`) and `pkg/apiserver/schema/pruning`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde_json::Value;

use super::{ApiError, Cause, ObjectValidator, Result};
use crate::{registry::ResourceDescriptor, schema::CompiledSchema};

/// (group, version, plural) -> (address of the CRD version JSON, compiled schema)
type SchemaCache = HashMap<(String, String, String), (usize, Arc<CompiledSchema>)>;

/// Compiles each CRD version's schema once and validates its custom resources.
#[derive(Default)]
pub struct CrdSchemaValidator {
    cache: Mutex<SchemaCache>,
}

impl CrdSchemaValidator {
    fn compiled(
        &self,
        d: &ResourceDescriptor,
        version: &Arc<Value>,
    ) -> Result<Option<Arc<CompiledSchema>>> {
        let schema = &version["schema"]["openAPIV3Schema"];
        if !schema.is_object() {
            return Ok(None);
        }
        let key = (d.group.clone(), d.version.clone(), d.plural.clone());
        let ptr = Arc::as_ptr(version) as usize;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((p, c)) = cache.get(&key)
            && *p == ptr
        {
            return Ok(Some(c.clone()));
        }
        let c =
            Arc::new(CompiledSchema::new(schema).map_err(|e| {
                ApiError::internal(format!("failed to compile the CRD schema: {e}"))
            })?);
        cache.insert(key, (ptr, c.clone()));
        Ok(Some(c))
    }
}

fn status_to_error(s: &Value) -> ApiError {
    let mut e = ApiError::new(
        s["code"]
            .as_u64()
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(422),
        s["reason"].as_str().unwrap_or("Invalid"),
        s["message"].as_str().unwrap_or_default(),
    );
    let d = &s["details"];
    e.details.name = d["name"].as_str().map(String::from);
    e.details.group = d["group"].as_str().map(String::from);
    e.details.kind = d["kind"].as_str().map(String::from);
    e.details.causes = d["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| Cause {
            reason: c["reason"].as_str().unwrap_or_default().into(),
            message: c["message"].as_str().unwrap_or_default().into(),
            field: c["field"].as_str().unwrap_or_default().into(),
        })
        .collect();
    e
}

impl ObjectValidator for CrdSchemaValidator {
    fn drop_unknown_fields(&self, d: &ResourceDescriptor, obj: &mut Value) -> Result<Vec<String>> {
        let Some(version) = &d.crd_version else {
            return Ok(Vec::new());
        };
        match self.compiled(d, version)? {
            Some(c) => Ok(c.prune(obj)),
            None => Ok(Vec::new()),
        }
    }

    fn validate(
        &self,
        d: &ResourceDescriptor,
        obj: &mut Value,
        old: Option<&Value>,
        sub: Option<&str>,
    ) -> Result<()> {
        let Some(version) = &d.crd_version else {
            return Ok(());
        };
        let Some(c) = self.compiled(d, version)? else {
            return Ok(());
        };
        c.prune(obj);
        c.default(obj);
        // The status strategy validates only `status` against the schema
        // (`statusStrategy.ValidateUpdate` -> `ValidateStatusUpdate`), then
        // the CEL rules of the whole object.
        let errors = match (sub, old) {
            (Some("status"), Some(_)) => c.validate_status(obj, old),
            _ => c.validate(obj, old),
        };
        if errors.is_empty() {
            return Ok(());
        }
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Err(status_to_error(&crate::schema::invalid_status(
            &d.kind, &d.group, &name, &errors,
        )))
    }
}
