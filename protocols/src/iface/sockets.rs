//! Socket handles: a slab of slots with a generation per slot, so that a stale handle held by an
//! application after its socket was freed and the slot reused finds nothing instead of a stranger.

use core::fmt;

/// Names one socket of one stack.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SocketHandle {
    index: u32,
    generation: u32,
}

impl fmt::Debug for SocketHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

/// A slab of `T` addressed by [`SocketHandle`].
#[derive(Debug)]
pub struct Slab<T> {
    slots: Vec<(u32, Option<T>)>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    pub fn insert(&mut self, value: T) -> SocketHandle {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            if let Some(slot) = self.slots.get_mut(index as usize) {
                slot.0 = slot.0.wrapping_add(1);
                slot.1 = Some(value);
                return SocketHandle {
                    index,
                    generation: slot.0,
                };
            }
        }
        let index = self.slots.len() as u32;
        self.slots.push((0, Some(value)));
        SocketHandle {
            index,
            generation: 0,
        }
    }

    pub fn get(&self, h: SocketHandle) -> Option<&T> {
        match self.slots.get(h.index as usize) {
            Some((g, Some(v))) if *g == h.generation => Some(v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, h: SocketHandle) -> Option<&mut T> {
        match self.slots.get_mut(h.index as usize) {
            Some((g, Some(v))) if *g == h.generation => Some(v),
            _ => None,
        }
    }

    pub fn remove(&mut self, h: SocketHandle) -> Option<T> {
        match self.slots.get_mut(h.index as usize) {
            Some((g, v @ Some(_))) if *g == h.generation => {
                self.free.push(h.index);
                self.len -= 1;
                v.take()
            }
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().filter_map(|(_, v)| v.as_mut())
    }

    pub fn iter(&self) -> impl Iterator<Item = (SocketHandle, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, (g, v))| {
            v.as_ref().map(|v| {
                (
                    SocketHandle {
                        index: i as u32,
                        generation: *g,
                    },
                    v,
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_handles_find_nothing() {
        let mut s = Slab::default();
        let a = s.insert("a");
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(s.get(a), None, "slot reused with a new generation");
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.remove(a), None);
        assert_eq!(s.len(), 1);
        assert_eq!(s.iter().count(), 1);
    }
}
