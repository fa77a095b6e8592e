/**
 * Image, video and audio candidates. Images share one zoom and take boxes drawn
 * with the mouse; video and audio share one transport: play, pause, seek and
 * speed on any player apply to all, so candidates are compared at the same time
 * position, and a time range is marked from the current position.
 */
import { type PointerEvent, useEffect, useRef, useState } from "react";
import type { Span } from "./judgment";

type Category = { key: string; label: string; color: string };

/** Players that move together; one of them is heard (A/B listening), the others play muted in step. */
export type Transport = {
  players: Set<HTMLMediaElement>;
  syncing: boolean;
  heard: HTMLMediaElement | null;
  onHeard: Set<() => void>;
};

export function newTransport(): Transport {
  return { players: new Set(), syncing: false, heard: null, onHeard: new Set() };
}

function listen(transport: Transport, element: HTMLMediaElement) {
  transport.heard = element;
  for (const player of transport.players) player.muted = player !== element;
  for (const notify of transport.onHeard) notify();
}

function follow(transport: Transport, source: HTMLMediaElement, apply: (other: HTMLMediaElement) => void) {
  if (transport.syncing) return;
  transport.syncing = true;
  try {
    for (const other of transport.players) if (other !== source) apply(other);
  } finally {
    transport.syncing = false;
  }
}

export function formatSeconds(seconds: number): string {
  const minutes = Math.floor(seconds / 60);
  return `${minutes}:${(seconds - minutes * 60).toFixed(1).padStart(4, "0")}`;
}

/** RMS level of the whole clip in dBFS, decoded by the browser (no upload, no server work). */
async function loudness(src: string): Promise<number | null> {
  const Context = window.AudioContext ?? (window as unknown as { webkitAudioContext?: typeof AudioContext }).webkitAudioContext;
  if (!Context) return null;
  const context = new Context();
  try {
    const buffer = await context.decodeAudioData(await (await fetch(src)).arrayBuffer());
    let sum = 0;
    let count = 0;
    for (let c = 0; c < buffer.numberOfChannels; c++) {
      const data = buffer.getChannelData(c);
      for (let i = 0; i < data.length; i++) sum += data[i] * data[i];
      count += data.length;
    }
    return count ? 10 * Math.log10(sum / count || 1e-12) : null;
  } catch {
    return null;
  } finally {
    void context.close();
  }
}

export function SyncedMedia({
  kind,
  src,
  label,
  transport,
  spans,
  categories,
  onMark,
}: {
  kind: "video" | "audio";
  src: string;
  label: string;
  transport: Transport;
  spans: Span[];
  categories: Category[];
  onMark?: (range: { start: number; end: number }) => void;
}) {
  const ref = useRef<HTMLMediaElement | null>(null);
  const [duration, setDuration] = useState(0);
  const [markStart, setMarkStart] = useState<number | null>(null);
  const [level, setLevel] = useState<number | null>(null);
  const [heard, setHeard] = useState(false);
  useEffect(() => {
    const update = () => setHeard(transport.heard !== null && transport.heard === ref.current);
    transport.onHeard.add(update);
    update();
    return () => void transport.onHeard.delete(update);
  }, [transport]);
  useEffect(() => {
    const element = ref.current;
    if (!element) return;
    transport.players.add(element);
    if (transport.heard === null) listen(transport, element);
    else element.muted = true;
    setHeard(transport.heard === element);
    const onPlay = () => follow(transport, element, (o) => void o.play().catch(() => {}));
    const onPause = () => follow(transport, element, (o) => o.pause());
    // A follower's own "seeked" comes back here: only a real difference moves the others.
    const onSeek = () =>
      follow(transport, element, (o) => {
        if (Math.abs(o.currentTime - element.currentTime) > 0.01) o.currentTime = element.currentTime;
      });
    const onRate = () => follow(transport, element, (o) => (o.playbackRate = element.playbackRate));
    const onMeta = () => setDuration(element.duration || 0);
    element.addEventListener("play", onPlay);
    element.addEventListener("pause", onPause);
    element.addEventListener("seeked", onSeek);
    element.addEventListener("ratechange", onRate);
    element.addEventListener("loadedmetadata", onMeta);
    return () => {
      transport.players.delete(element);
      element.removeEventListener("play", onPlay);
      element.removeEventListener("pause", onPause);
      element.removeEventListener("seeked", onSeek);
      element.removeEventListener("ratechange", onRate);
      element.removeEventListener("loadedmetadata", onMeta);
    };
  }, [transport]);
  useEffect(() => {
    if (kind === "audio") void loudness(src).then(setLevel);
  }, [kind, src]);
  const step = (seconds: number) => {
    const element = ref.current;
    if (element) element.currentTime = Math.max(0, element.currentTime + seconds);
  };
  const now = () => ref.current?.currentTime ?? 0;
  const colour = Object.fromEntries(categories.map((c) => [c.key, c.color]));
  return (
    <div className="media">
      {kind === "video" ? (
        <video ref={(el) => void (ref.current = el)} src={src} controls preload="metadata" aria-label={label} />
      ) : (
        <audio ref={(el) => void (ref.current = el)} src={src} controls preload="metadata" aria-label={label} />
      )}
      {duration > 0 && (
        <div className="timeline" aria-label={`${label}: marked time ranges`}>
          {spans
            .filter((s) => s.start !== null && s.end !== null)
            .map((s) => (
              <span
                key={s.id}
                title={`${s.category} ${formatSeconds(s.start!)}–${formatSeconds(s.end!)}`}
                style={{ left: `${(s.start! / duration) * 100}%`, width: `${((s.end! - s.start!) / duration) * 100}%`, background: colour[s.category] }}
              />
            ))}
        </div>
      )}
      <div className="row">
        {kind === "video" && (
          <>
            <button type="button" onClick={() => step(-1 / 25)} aria-label={`${label}: one frame back`}>
              ◀ frame
            </button>
            <button type="button" onClick={() => step(1 / 25)} aria-label={`${label}: one frame on`}>
              frame ▶
            </button>
          </>
        )}
        <button
          type="button"
          aria-pressed={heard}
          onClick={() => ref.current && listen(transport, ref.current)}
        >
          {heard ? `Hearing ${label}` : `Listen to ${label}`}
        </button>
        {onMark && markStart === null && (
          <button type="button" onClick={() => setMarkStart(now())}>
            Mark from here
          </button>
        )}
        {onMark && markStart !== null && (
          <button
            type="button"
            onClick={() => {
              const [a, b] = [markStart, now()].sort((x, y) => x - y);
              setMarkStart(null);
              if (b > a) onMark({ start: a, end: b });
            }}
          >
            …to here (from {formatSeconds(markStart)})
          </button>
        )}
        {kind === "audio" && <span className="loudness">Loudness: {level === null ? "…" : `${level.toFixed(1)} dBFS RMS`}</span>}
      </div>
    </div>
  );
}

export function ZoomImage({
  src,
  label,
  zoomed,
  onToggle,
  spans,
  categories,
  onBox,
}: {
  src: string;
  label: string;
  zoomed: boolean;
  onToggle: () => void;
  spans: Span[];
  categories: Category[];
  onBox?: (box: [number, number, number, number]) => void;
}) {
  const frame = useRef<HTMLDivElement>(null);
  const [drag, setDrag] = useState<{ x0: number; y0: number; x1: number; y1: number } | null>(null);
  const colour = Object.fromEntries(categories.map((c) => [c.key, c.color]));
  const at = (event: PointerEvent) => {
    const rect = frame.current!.getBoundingClientRect();
    return { x: Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width)), y: Math.min(1, Math.max(0, (event.clientY - rect.top) / rect.height)) };
  };
  const boxOf = (d: NonNullable<typeof drag>): [number, number, number, number] => [
    Math.min(d.x0, d.x1),
    Math.min(d.y0, d.y1),
    Math.abs(d.x1 - d.x0),
    Math.abs(d.y1 - d.y0),
  ];
  return (
    <div className={`image-frame${zoomed ? " zoomed" : ""}`}>
      <button type="button" onClick={onToggle} aria-pressed={zoomed} aria-label={`${label}: ${zoomed ? "zoom out" : "zoom in"} (all images)`}>
        {zoomed ? "Zoom out" : "Zoom in"}
      </button>
      <div
        ref={frame}
        className="image-canvas"
        onPointerDown={(e) => {
          const p = at(e);
          setDrag({ x0: p.x, y0: p.y, x1: p.x, y1: p.y });
        }}
        onPointerMove={(e) => drag && setDrag({ ...drag, ...{ x1: at(e).x, y1: at(e).y } })}
        onPointerUp={() => {
          if (!drag) return;
          const box = boxOf(drag);
          setDrag(null);
          if (onBox && box[2] > 0.01 && box[3] > 0.01) onBox(box);
          else onToggle(); // a click, not a drag: zoom (every image alike)
        }}
      >
        <img src={src} alt={label} draggable={false} />
        {spans
          .filter((s) => s.box)
          .map((s) => (
            <span key={s.id} className="box" title={s.category} style={boxStyle(s.box!, colour[s.category])} />
          ))}
        {drag && <span className="box drawing" style={boxStyle(boxOf(drag), "#f0a000")} />}
      </div>
    </div>
  );
}

function boxStyle([x, y, w, h]: [number, number, number, number], color = "#999999") {
  return { left: `${x * 100}%`, top: `${y * 100}%`, width: `${w * 100}%`, height: `${h * 100}%`, borderColor: color };
}
