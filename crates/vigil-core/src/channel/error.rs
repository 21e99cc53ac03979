//! The channel's error type: what the caller does next.

/// Why an input was refused, named for what happens next (BOLT 1 and 2):
/// ignore the message, warn the peer, or fail the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelError {
    /// The input is dropped; the channel is unchanged and carries on.
    Ignore(String),
    /// The peer broke a rule that does not endanger funds: send a BOLT 1
    /// `warning`; the channel is unchanged.
    Warn(String),
    /// The channel is failed: an `error` goes to the peer and the channel is
    /// closed (its latest commitment goes on chain unless it is stale).
    Close(String),
}

impl ChannelError {
    /// The human-readable explanation.
    pub fn message(&self) -> &str {
        match self {
            Self::Ignore(m) | Self::Warn(m) | Self::Close(m) => m,
        }
    }
}

impl std::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ignore(m) => write!(f, "ignored: {m}"),
            Self::Warn(m) => write!(f, "warning: {m}"),
            Self::Close(m) => write!(f, "channel failed: {m}"),
        }
    }
}

impl std::error::Error for ChannelError {}

/// Shorthand for a [`ChannelError::Close`].
pub(crate) fn close<T>(msg: impl Into<String>) -> Result<T, ChannelError> {
    Err(ChannelError::Close(msg.into()))
}

/// Shorthand for a [`ChannelError::Ignore`].
pub(crate) fn ignore<T>(msg: impl Into<String>) -> Result<T, ChannelError> {
    Err(ChannelError::Ignore(msg.into()))
}

/// Shorthand for a [`ChannelError::Warn`].
pub(crate) fn warn<T>(msg: impl Into<String>) -> Result<T, ChannelError> {
    Err(ChannelError::Warn(msg.into()))
}
