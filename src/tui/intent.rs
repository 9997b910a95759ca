//! What a key press or a click asks of the UI: the vocabulary between the key map
//! (`keymap.rs`, keys → intents) and the state (`app.rs`, intents → changes), so that
//! neither imports the other.

/// What a key or click asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    NextSample,
    PreviousSample,
    NextEpoch,
    PreviousEpoch,
    /// The next (previous) epoch with an event for the shown sample.
    NextEvent,
    PreviousEvent,
    FirstEpoch,
    LatestEpoch,
    ToggleFollow,
    NextMethod,
    NextLayer,
    NextTarget,
    NextOverlay,
    ToggleGrid,
    ToggleBox,
    Snapshot,
    Animate,
    ToggleHelp,
    /// Esc: close the topmost popup (help, then the grid); quit from the plain view.
    Back,
    Quit,
    SelectSample(usize),
    /// An epoch by its place on the timeline (comparing: on the runs' common axis).
    SelectEpoch(usize),
    /// Comparing: show or hide a run of the page shown (0…7).
    ToggleRun(usize),
    /// Comparing more than [`RUNS_PER_PAGE`](super::app::RUNS_PER_PAGE) runs: show the next page of them.
    NextRunPage,
    /// Comparing: the next pair of shown runs whose maps are differenced.
    NextDifference,
}
