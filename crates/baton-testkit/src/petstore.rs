//! A stand-in for the Swagger petstore (`https://petstore.swagger.io/v2`): ten fixed pets, the
//! two operations the CTK calls, and a Swagger 2.0 document describing them that points back at
//! this server.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::problem;

/// Ids of the fixed pets: `1..=PET_COUNT`.
const PET_COUNT: u64 = 10;

pub(crate) fn routes(local: SocketAddr) -> Router {
    Router::new()
        .route("/pet/findByStatus", get(find_by_status))
        .route("/pet/getPetByName/{name}", get(get_by_name))
        .route("/pet/{id}", get(get_pet))
        .route(
            "/swagger.json",
            get(move |headers: HeaderMap| swagger(headers, local)),
        )
}

fn status_of(id: u64) -> &'static str {
    match id {
        1..=6 => "available",
        7 | 8 => "pending",
        _ => "sold",
    }
}

fn pet(id: u64) -> Value {
    let (category, name) = if id % 2 == 1 {
        ("Dogs", "doggie")
    } else {
        ("Cats", "kitty")
    };
    json!({
        "id": id,
        "category": { "id": 1 + id % 2, "name": category },
        "name": format!("{name}-{id}"),
        "photoUrls": [format!("https://example.com/pets/{id}.jpg")],
        "tags": [{ "id": id, "name": format!("tag-{id}") }],
        "status": status_of(id),
    })
}

async fn get_pet(Path(id): Path<String>) -> Response {
    match id.parse::<u64>() {
        Ok(n) if (1..=PET_COUNT).contains(&n) => Json(pet(n)).into_response(),
        Ok(_) => problem(
            StatusCode::NOT_FOUND,
            "Pet not found",
            &format!("there is no pet with id {id}"),
        ),
        Err(_) => problem(
            StatusCode::NOT_FOUND,
            "Pet not found",
            &format!("'{id}' is not a pet id"),
        ),
    }
}

/// Like the real petstore, `status` may hold several comma-separated statuses.
async fn find_by_status(Query(query): Query<HashMap<String, String>>) -> Json<Value> {
    let wanted: Vec<&str> = query
        .get("status")
        .map(|s| s.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let pets: Vec<Value> = (1..=PET_COUNT)
        .filter(|id| wanted.contains(&status_of(*id)))
        .map(pet)
        .collect();
    Json(Value::Array(pets))
}

/// The CTK's try scenarios expect this operation to answer 404.
async fn get_by_name(Path(name): Path<String>) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "Pet not found",
        &format!("there is no pet named '{name}'"),
    )
}

/// The `host` is the one the client used (its `Host` header), so the document works whichever
/// address the server was reached by; without that header it is the bound address.
async fn swagger(headers: HeaderMap, local: SocketAddr) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| local.to_string());
    Json(swagger_document(&host)).into_response()
}

fn swagger_document(host: &str) -> Value {
    json!({
        "swagger": "2.0",
        "info": { "title": "Swagger Petstore (Baton fake)", "version": "1.0.7" },
        "host": host,
        "basePath": "/petstore/v2",
        "schemes": ["http"],
        "tags": [{ "name": "pet" }],
        "paths": {
            "/pet/findByStatus": {
                "get": {
                    "tags": ["pet"],
                    "summary": "Finds Pets by status",
                    "operationId": "findPetsByStatus",
                    "produces": ["application/json"],
                    "parameters": [{
                        "name": "status",
                        "in": "query",
                        "description": "Status values that need to be considered for filter",
                        "required": true,
                        "type": "array",
                        "items": { "type": "string", "enum": ["available", "pending", "sold"], "default": "available" },
                        "collectionFormat": "multi"
                    }],
                    "responses": {
                        "200": { "description": "successful operation", "schema": { "type": "array", "items": { "$ref": "#/definitions/Pet" } } },
                        "400": { "description": "Invalid status value" }
                    }
                }
            },
            "/pet/{petId}": {
                "get": {
                    "tags": ["pet"],
                    "summary": "Find pet by ID",
                    "operationId": "getPetById",
                    "produces": ["application/json"],
                    "parameters": [{
                        "name": "petId",
                        "in": "path",
                        "description": "ID of pet to return",
                        "required": true,
                        "type": "integer",
                        "format": "int64"
                    }],
                    "responses": {
                        "200": { "description": "successful operation", "schema": { "$ref": "#/definitions/Pet" } },
                        "404": { "description": "Pet not found" }
                    }
                }
            }
        },
        "definitions": {
            "Pet": {
                "type": "object",
                "required": ["name", "photoUrls"],
                "properties": {
                    "id": { "type": "integer", "format": "int64" },
                    "category": { "type": "object" },
                    "name": { "type": "string" },
                    "photoUrls": { "type": "array", "items": { "type": "string" } },
                    "tags": { "type": "array", "items": { "type": "object" } },
                    "status": { "type": "string", "enum": ["available", "pending", "sold"] }
                }
            }
        }
    })
}
