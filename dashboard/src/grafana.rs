//! Grafana's dashboard JSON model (schema 39): panels laid out in rows of a 24-column grid, each
//! querying the Prometheus data source the dashboard's `datasource` variable picks.

use serde_json::{Value, json};

/// The data source every panel and variable uses.
fn datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

/// One PromQL query of a panel and the legend of its series (`{{label}}` placeholders).
pub struct Query {
    /// The expression.
    pub expr: String,
    /// The legend, e.g. `{{route}}`.
    pub legend: &'static str,
}

/// A time-series panel.
pub struct Panel {
    /// The title.
    pub title: &'static str,
    /// What the panel shows and how to read it.
    pub description: &'static str,
    /// Grafana's unit id (`reqps`, `s`, `percentunit`, `short`, `currencyUSD`, ...).
    pub unit: &'static str,
    /// The queries.
    pub queries: Vec<Query>,
}

/// Panels in rows, two to a line.
#[derive(Default)]
pub struct Layout {
    panels: Vec<Value>,
    /// The grid line the next row or panel starts on.
    y: u32,
    /// The column of the next panel (0 or 12).
    x: u32,
}

/// Panel height in grid units.
const HEIGHT: u32 = 8;
/// Panel width: half the 24-column grid.
const WIDTH: u32 = 12;

impl Layout {
    /// Starts a row titled `title` on a new line.
    pub fn row(&mut self, title: &str) {
        self.end_line();
        let id = self.next_id();
        self.panels.push(json!({
            "id": id, "type": "row", "title": title, "collapsed": false, "panels": [],
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
        }));
        self.y += 1;
    }

    /// Adds `panel` in the next free half of the current line.
    pub fn panel(&mut self, panel: Panel) {
        let id = self.next_id();
        let targets: Vec<Value> = panel
            .queries
            .iter()
            .zip('A'..='Z')
            .map(|(query, ref_id)| {
                json!({
                    "datasource": datasource(), "expr": query.expr,
                    "legendFormat": query.legend, "refId": ref_id.to_string(),
                })
            })
            .collect();
        self.panels.push(json!({
            "id": id, "type": "timeseries", "title": panel.title,
            "description": panel.description, "datasource": datasource(),
            "gridPos": {"h": HEIGHT, "w": WIDTH, "x": self.x, "y": self.y},
            "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
            "options": {
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": true},
                "tooltip": {"mode": "multi", "sort": "desc"},
            },
            "targets": targets,
        }));
        if self.x == 0 {
            self.x = WIDTH;
        } else {
            self.x = 0;
            self.y += HEIGHT;
        }
    }

    /// The panels, for the dashboard's `panels`.
    pub fn into_panels(self) -> Vec<Value> {
        self.panels
    }

    fn end_line(&mut self) {
        if self.x != 0 {
            self.x = 0;
            self.y += HEIGHT;
        }
    }

    fn next_id(&self) -> usize {
        self.panels.len() + 1
    }
}

/// A variable listing the values of `label` in `series` (multi-select, "All" by default).
pub fn label_variable(name: &str, label: &str, series: &str) -> Value {
    let query = format!("label_values({series}, {label})");
    json!({
        "name": name, "label": label, "type": "query", "datasource": datasource(),
        "query": {"query": query, "refId": name},
        "definition": query, "refresh": 2, "includeAll": true, "multi": true, "allValue": ".*",
        "current": {"selected": true, "text": ["All"], "value": ["$__all"]}, "sort": 1,
    })
}

/// The dashboard around `panels` and `variables` (after the data source picker).
pub fn dashboard(title: &str, uid: &str, variables: Vec<Value>, panels: Vec<Value>) -> Value {
    let mut list = vec![json!({
        "name": "datasource", "label": "Data source", "type": "datasource",
        "query": "prometheus", "current": {}, "hide": 0,
    })];
    list.extend(variables);
    json!({
        "title": title, "uid": uid, "tags": ["agentgateway"], "editable": true,
        "schemaVersion": 39, "version": 1, "refresh": "30s", "graphTooltip": 1,
        "time": {"from": "now-1h", "to": "now"}, "timezone": "",
        "annotations": {"list": []}, "templating": {"list": list}, "panels": panels,
    })
}
