/**
 * Key segments as file names.
 *
 * Names must be unambiguous on case-insensitive and normalising file systems (macOS, Windows),
 * never `.`/`..`, never a Windows device name, and contain no `/` or `\`. So only [a-z0-9_-] and
 * inner dots stay literal; an upper-case letter becomes `^` and the letter; everything else
 * becomes `%XX` per UTF-8 byte. Decoding re-encodes and compares, so foreign files (`.DS_Store`)
 * are ignored rather than misread.
 *
 * @module
 */
import { ValidationError } from "../../errors.ts";

/** One version (or delete marker) as its file name describes it. */
export interface VersionEntry {
  versionId: string;
  isDeleteMarker: boolean;
  size: number;
}

/** Separates an encoded segment from what follows in a leaf name; encoding never emits `~`. */
export const SEP = "~";
/** The tail of a history directory's name. */
export const HISTORY = "o";
/** The directory name of an empty key segment (as in `a//b`), which has no encoded characters. */
const EMPTY_DIR = "~";
/** Encoded segments stay below this, so that a live entry (`seg~<id>.<size>`) fits in 255 bytes. */
const MAX_SEGMENT_NAME = 200;
/** A leaf name's part after the segment: `o` in versions/, `<id>.<size>` in live/. */
export const LIVE_TAIL_RE = /^(\d{15}-\d{5}-[0-9a-f]{8})\.(\d+)$/;
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\.|$)/;

/** A key segment as a file name (see the module documentation). */
export function encodeSegment(segment: string): string {
  let out = "";
  const last = segment.length - 1;
  for (let i = 0; i < segment.length; i++) {
    const c = segment.charCodeAt(i);
    if ((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x5f || c === 0x2d) {
      out += segment[i];
    } else if (c >= 0x41 && c <= 0x5a) {
      out += `^${String.fromCharCode(c + 0x20)}`;
    } else if (c === 0x2e && i !== 0 && i !== last) {
      out += ".";
    } else {
      const cp = segment.codePointAt(i)!;
      if (cp > 0xffff) i++;
      for (const b of utf8.encode(String.fromCodePoint(cp))) {
        out += `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
      }
    }
  }
  if (WINDOWS_DEVICE.test(out))
    out = `%${out.charCodeAt(0).toString(16).toUpperCase()}${out.slice(1)}`;
  return out;
}

/** The key segment a file name encodes, or `undefined` for names oq did not write. */
export function decodeSegment(name: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < name.length; i++) {
    const ch = name[i]!;
    if (ch === "%") {
      const b = Number.parseInt(name.slice(i + 1, i + 3), 16);
      if (!/^[0-9A-F]{2}$/.test(name.slice(i + 1, i + 3))) return undefined;
      bytes.push(b);
      i += 2;
    } else if (ch === "^") {
      const next = name.charCodeAt(i + 1);
      if (!(next >= 0x61 && next <= 0x7a)) return undefined;
      bytes.push(next - 0x20);
      i++;
    } else {
      bytes.push(ch.charCodeAt(0));
    }
  }
  let segment: string;
  try {
    segment = strictUtf8.decode(new Uint8Array(bytes));
  } catch {
    return undefined;
  }
  return encodeSegment(segment) === name ? segment : undefined;
}

/** Fast path: names that are already safe as they are (most task ids and index segments). */
const PLAIN = /^[a-z0-9_-](?:[a-z0-9._-]*[a-z0-9_-])?$/;

/** A directory name for a key segment that is not the last. */
export function encodeDir(segment: string): string {
  return segment === "" ? EMPTY_DIR : checkName(encodeSegment(segment), segment);
}

/** A leaf's encoded segment; empty for the empty segment, which `~` after it keeps non-empty. */
export function encodeStem(segment: string): string {
  return segment === "" ? "" : checkName(encodeSegment(segment), segment);
}

function checkName(name: string, segment: string): string {
  if (name.length > MAX_SEGMENT_NAME) {
    throw new ValidationError(
      `key segment ${JSON.stringify(segment.slice(0, 40))}... is too long for FileStorage (${name.length} bytes encoded, max ${MAX_SEGMENT_NAME}); use shorter segments between slashes`,
    );
  }
  return name;
}

function decodeName(name: string): string | undefined {
  if (PLAIN.test(name) && !WINDOWS_DEVICE.test(name)) return name;
  return decodeSegment(name);
}

/**
 * A directory entry of either tree, decoded; `undefined` for names oq did not write (such as
 * `.DS_Store`), which are ignored rather than misread.
 */
export function parseEntry(
  name: string,
  tree: "live" | "history",
): { segment: string; leaf: boolean; current?: VersionEntry } | undefined {
  if (name === EMPTY_DIR) return { segment: "", leaf: false };
  const sep = name.indexOf(SEP);
  if (sep === -1) {
    const segment = decodeName(name);
    return segment === undefined || segment === "" ? undefined : { segment, leaf: false };
  }
  const stem = name.slice(0, sep);
  const tail = name.slice(sep + 1);
  const segment = stem === "" ? "" : decodeName(stem);
  if (segment === undefined) return undefined;
  if (tree === "history") return tail === HISTORY ? { segment, leaf: true } : undefined;
  const m = LIVE_TAIL_RE.exec(tail);
  if (m === null) return undefined;
  return {
    segment,
    leaf: true,
    current: { versionId: m[1]!, isDeleteMarker: false, size: Number(m[2]) },
  };
}
