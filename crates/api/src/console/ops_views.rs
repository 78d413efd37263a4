//! The templates of the schedules, costs and operations pages, and the
//! spend chart's geometry (computed here, written into the SVG by askama
//! like every other value: no script draws it).

use askama::Template;

use super::views::{Choice, Who};

/// The create form's values: the defaults, or what was sent when a create
/// was refused (so nothing typed is lost).
pub struct ScheduleForm {
    pub project: String,
    pub cron: String,
    pub timezone: String,
    pub input: String,
}

impl Default for ScheduleForm {
    fn default() -> ScheduleForm {
        ScheduleForm {
            project: String::new(),
            cron: "0 9 * * *".into(),
            timezone: "UTC".into(),
            input: "{}".into(),
        }
    }
}

pub struct ScheduleRow {
    pub id: String,
    pub project: String,
    pub cron: String,
    pub timezone: String,
    pub status: String,
    pub active: bool,
    /// Empty while paused.
    pub next_fire: String,
    /// What its next run is about.
    pub about: String,
    pub inputs: usize,
    pub created_by: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "console/schedules.html")]
pub struct SchedulesPage {
    pub session: Option<Who>,
    pub csrf: String,
    pub can_operate: bool,
    pub schedules: Vec<ScheduleRow>,
    pub next: Option<String>,
    pub projects: Vec<Choice>,
    pub form: ScheduleForm,
    /// Why the create was refused, one line per field.
    pub errors: Vec<String>,
}

/// One day's bar: live spend at the bottom, mock spend stacked on it.
pub struct Bar {
    pub x: f64,
    pub width: f64,
    pub live_y: f64,
    pub live_height: f64,
    pub mock_y: f64,
    pub mock_height: f64,
    /// The day and its amounts (the bar's tooltip).
    pub title: String,
}

/// A label under the x axis or beside a grid line.
pub struct AxisLabel {
    pub x: f64,
    pub y: f64,
    pub text: String,
}

/// The spend chart: a bar per day, heights proportional to the day's total.
pub struct Chart {
    pub width: f64,
    pub height: f64,
    /// Left and right ends of the plot, and its baseline.
    pub left: f64,
    pub right: f64,
    pub baseline: f64,
    pub bars: Vec<Bar>,
    /// Horizontal grid lines (the scale's top and middle), y and label.
    pub grid: Vec<AxisLabel>,
    pub days: Vec<AxisLabel>,
    /// Whether anything was spent in the range (else the chart says so).
    pub any: bool,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 28.0;
/// Day labels under the axis, at most.
const DAY_LABELS: usize = 8;

/// One decimal: enough for pixels, and short in the page.
fn px(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// The smallest of 1, 2, 5 × 10ⁿ at or above `value` (0 for nothing).
pub fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 0.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| *step >= value * (1.0 - 1e-12))
        .unwrap_or(10.0 * power)
}

impl Chart {
    /// The chart of `days`: `(YYYY-MM-DD, live USD, mock USD)`, oldest
    /// first, every day of the range.
    pub fn of(days: &[(String, f64, f64)]) -> Chart {
        let top = nice_ceiling(days.iter().map(|(_, live, mock)| live + mock).fold(0.0, f64::max));
        let plot_width = WIDTH - LEFT - RIGHT;
        let plot_height = HEIGHT - TOP - BOTTOM;
        let baseline = TOP + plot_height;
        let slot = plot_width / days.len().max(1) as f64;
        let bar_width = (slot * 0.7).max(1.0);
        let scale = |usd: f64| if top > 0.0 { usd / top * plot_height } else { 0.0 };
        let bars = days
            .iter()
            .enumerate()
            .map(|(i, (day, live, mock))| {
                let (live_height, mock_height) = (scale(*live), scale(*mock));
                Bar {
                    x: px(LEFT + i as f64 * slot + (slot - bar_width) / 2.0),
                    width: px(bar_width),
                    live_y: px(baseline - live_height),
                    live_height: px(live_height),
                    mock_y: px(baseline - live_height - mock_height),
                    mock_height: px(mock_height),
                    title: format!(
                        "{day}: {} (live {}, mock {})",
                        super::views::usd(live + mock),
                        super::views::usd(*live),
                        super::views::usd(*mock)
                    ),
                }
            })
            .collect();
        // Evenly spaced, counted back from the last day (today, usually).
        let every = days.len().div_ceil(DAY_LABELS).max(1);
        let day_labels = days
            .iter()
            .enumerate()
            .filter(|(i, _)| (days.len() - 1 - i) % every == 0)
            .map(|(i, (day, _, _))| AxisLabel {
                x: px(LEFT + (i as f64 + 0.5) * slot),
                y: HEIGHT - 8.0,
                // MM-DD: the year is in the heading.
                text: day.get(5..).unwrap_or(day).to_string(),
            })
            .collect();
        let grid = if top > 0.0 {
            [top, top / 2.0]
                .into_iter()
                .map(|usd| AxisLabel {
                    x: LEFT - 4.0,
                    y: px(baseline - scale(usd)),
                    text: super::views::usd(usd),
                })
                .collect()
        } else {
            Vec::new()
        };
        Chart {
            width: WIDTH,
            height: HEIGHT,
            left: LEFT,
            right: WIDTH - RIGHT,
            baseline,
            bars,
            grid,
            days: day_labels,
            any: top > 0.0,
        }
    }
}

/// One row of the costs table: a day, a project, a mode.
pub struct CostRow {
    pub day: String,
    pub project: String,
    pub mode: String,
    pub spent: String,
    /// `kieai 4.8 USD, shotstack 0.48 USD` (the providers that cost).
    pub providers: String,
}

/// One spending limit and what is left of it (or none set).
pub struct BudgetRow {
    /// `all projects` or a project's name.
    pub whose: String,
    /// `today` or `this month`.
    pub period: String,
    /// `no limit` when unset.
    pub limit: String,
    pub spent: String,
    /// Empty when there is no limit.
    pub left: String,
    /// Nothing is left.
    pub exhausted: bool,
}

#[derive(Template)]
#[template(path = "console/costs.html")]
pub struct CostsPage {
    pub session: Option<Who>,
    pub from: String,
    pub to: String,
    pub total: String,
    pub chart: Chart,
    pub rows: Vec<CostRow>,
    pub budgets: Vec<BudgetRow>,
    /// `MAX_ACTIVE_RUNS`, or `no cap`.
    pub active_cap: String,
}

pub struct DeadLetterRow {
    pub seq: i64,
    pub kind: String,
    pub run_id: Option<String>,
    /// What it holds, in short.
    pub what: String,
    pub error: String,
    pub attempts: i64,
    pub created: String,
    pub last_attempt: String,
}

/// A command to the orchestrator not yet acknowledged.
pub struct CommandRow {
    pub seq: i64,
    pub run_id: String,
    pub kind: String,
    pub attempts: i64,
    pub created: String,
    pub next_attempt: String,
    pub last_error: String,
}

/// A chat message's push to a channel.
pub struct PushRow {
    pub message_seq: i64,
    pub channel: String,
    /// A Telegram chat id, or a webhook's host (its URL may hold a secret).
    pub target: String,
    pub status: String,
    pub attempts: i64,
    /// Empty unless it is pending.
    pub next_attempt: String,
    pub last_error: String,
    pub delivered: String,
}

/// A provider's webhook as it was received (never retried: a refused one
/// is the sender's to send again).
pub struct WebhookRow {
    pub provider: String,
    pub run_id: Option<String>,
    pub signature: String,
    pub outcome: String,
    pub size: i64,
    pub received: String,
}

pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub run_id: Option<String>,
    pub gate: String,
    pub accepted: bool,
    pub outcome: String,
    pub ip: String,
}

#[derive(Template)]
#[template(path = "console/ops.html")]
pub struct OpsPage {
    pub session: Option<Who>,
    pub csrf: String,
    pub can_operate: bool,
    pub dead_letters: Vec<DeadLetterRow>,
    pub commands: Vec<CommandRow>,
    pub pushes: Vec<PushRow>,
    pub webhooks: Vec<WebhookRow>,
    /// `None`: the key may not read the audit.
    pub audit: Option<Vec<AuditRow>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_ends_on_a_round_amount() {
        let cases = [
            (0.0, 0.0),
            (0.4, 0.5),
            (1.0, 1.0),
            (1.2, 2.0),
            (3.0, 5.0),
            (7.5, 10.0),
            (0.0012, 0.002),
        ];
        for (value, expected) in cases {
            assert!(
                (nice_ceiling(value) - expected).abs() < 1e-12,
                "{value}: {}",
                nice_ceiling(value)
            );
        }
    }

    #[test]
    fn bars_are_proportional_to_each_days_total_and_stacked() {
        let days = vec![
            ("2026-03-01".to_string(), 0.0, 0.0),
            ("2026-03-02".to_string(), 1.0, 0.0),
            ("2026-03-03".to_string(), 0.5, 0.5),
            ("2026-03-04".to_string(), 2.0, 0.0),
        ];
        let chart = Chart::of(&days);
        assert!(chart.any);
        let plot = chart.baseline - TOP;
        let heights: Vec<f64> = chart.bars.iter().map(|b| b.live_height + b.mock_height).collect();
        // The tallest day fills the scale (2 USD), the others in proportion.
        assert_eq!(heights, [0.0, px(plot / 2.0), px(plot / 2.0), plot]);
        let stacked = &chart.bars[2];
        assert_eq!(
            stacked.mock_y + stacked.mock_height,
            stacked.live_y,
            "mock sits on live"
        );
        assert_eq!(stacked.live_y + stacked.live_height, chart.baseline);
        assert_eq!(stacked.title, "2026-03-03: 1 USD (live 0.5 USD, mock 0.5 USD)");
        assert!(
            chart.bars.windows(2).all(|w| w[0].x + w[0].width < w[1].x),
            "bars do not overlap"
        );
        assert_eq!(chart.grid[0].text, "2 USD");
        let labels: Vec<&str> = chart.days.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(labels, ["03-01", "03-02", "03-03", "03-04"]);
    }

    #[test]
    fn a_range_without_spend_draws_no_bars() {
        let days: Vec<_> = (1..=30).map(|d| (format!("2026-03-{d:02}"), 0.0, 0.0)).collect();
        let chart = Chart::of(&days);
        assert!(!chart.any && chart.grid.is_empty());
        assert!(chart.bars.iter().all(|b| b.live_height == 0.0 && b.mock_height == 0.0));
        let labels: Vec<&str> = chart.days.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(
            labels,
            ["03-02", "03-06", "03-10", "03-14", "03-18", "03-22", "03-26", "03-30"]
        );
    }
}
