//! Pull sync: walk a [`ChainSource`]'s active chain block by block, seeing
//! reorgs as disconnections.

use bitcoin::Block;

use crate::{BlockRef, ChainSource, ChainSourceError};

/// One step of a pull sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainEvent {
    /// This block left the active chain; the follower now stands on its
    /// parent.
    Disconnected(BlockRef),
    /// This block joined the active chain on top of the follower's previous
    /// position.
    Connected {
        /// Its height.
        height: u32,
        /// The block.
        block: Block,
    },
}

/// Follows a chain source from a known position to its tip.
///
/// Each [`ChainFollower::poll`] returns one event: first the disconnections
/// back to the fork point if the position left the active chain, then the
/// connections up to the tip. Applying the events in order keeps a consumer in
/// step with the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainFollower {
    position: BlockRef,
}

impl ChainFollower {
    /// A follower standing on `position`.
    pub fn new(position: BlockRef) -> Self {
        Self { position }
    }

    /// The last block the follower has reported as connected.
    pub fn position(&self) -> BlockRef {
        self.position
    }

    /// The next event, or `None` once the follower is at the tip.
    ///
    /// # Errors
    ///
    /// - [`ChainSourceError::UnknownBlock`] if the position left the active
    ///   chain and the source does not know its header (so the fork point
    ///   cannot be found), including a source on another chain altogether;
    /// - any error of the source.
    pub fn poll(&mut self, source: &dyn ChainSource) -> Result<Option<ChainEvent>, ChainSourceError> {
        // A reorg can race a poll; the source is asked again a few times
        // before giving up for this round.
        for _ in 0..4 {
            let here = self.position;
            if source.block_hash(here.height)? != Some(here.hash) {
                if here.height == 0 {
                    return Err(ChainSourceError::UnknownBlock(here.hash));
                }
                let info = source.header(&here.hash)?.ok_or(ChainSourceError::UnknownBlock(here.hash))?;
                self.position = BlockRef { height: here.height - 1, hash: info.header.prev_blockhash };
                return Ok(Some(ChainEvent::Disconnected(here)));
            }
            let Some(next) = source.block_hash(here.height + 1)? else {
                return Ok(None);
            };
            let block = source.block(&next)?.ok_or(ChainSourceError::UnknownBlock(next))?;
            if block.header.prev_blockhash != here.hash {
                continue;
            }
            self.position = BlockRef { height: here.height + 1, hash: next };
            return Ok(Some(ChainEvent::Connected { height: here.height + 1, block }));
        }
        Ok(None)
    }
}
