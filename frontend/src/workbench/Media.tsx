/**
 * Image, video and audio candidates. Images share one zoom; video and audio share
 * one transport: play, pause, seek and speed on any player apply to all, so
 * candidates are compared at the same time position.
 */
import { useEffect, useRef } from "react";

export type Transport = { players: Set<HTMLMediaElement>; syncing: boolean };

export function newTransport(): Transport {
  return { players: new Set(), syncing: false };
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

export function SyncedMedia({ kind, src, label, transport }: { kind: "video" | "audio"; src: string; label: string; transport: Transport }) {
  const ref = useRef<HTMLMediaElement | null>(null);
  useEffect(() => {
    const element = ref.current;
    if (!element) return;
    transport.players.add(element);
    const onPlay = () => follow(transport, element, (o) => void o.play().catch(() => {}));
    const onPause = () => follow(transport, element, (o) => o.pause());
    const onSeek = () => follow(transport, element, (o) => (o.currentTime = element.currentTime));
    const onRate = () => follow(transport, element, (o) => (o.playbackRate = element.playbackRate));
    element.addEventListener("play", onPlay);
    element.addEventListener("pause", onPause);
    element.addEventListener("seeked", onSeek);
    element.addEventListener("ratechange", onRate);
    return () => {
      transport.players.delete(element);
      element.removeEventListener("play", onPlay);
      element.removeEventListener("pause", onPause);
      element.removeEventListener("seeked", onSeek);
      element.removeEventListener("ratechange", onRate);
    };
  }, [transport]);
  const step = (seconds: number) => {
    const element = ref.current;
    if (element) element.currentTime = Math.max(0, element.currentTime + seconds);
  };
  return (
    <div className="media">
      {kind === "video" ? (
        <video ref={(el) => void (ref.current = el)} src={src} controls preload="metadata" aria-label={label} />
      ) : (
        <audio ref={(el) => void (ref.current = el)} src={src} controls preload="metadata" aria-label={label} />
      )}
      {kind === "video" && (
        <div className="row">
          <button type="button" onClick={() => step(-1 / 25)} aria-label={`${label}: one frame back`}>◀ frame</button>
          <button type="button" onClick={() => step(1 / 25)} aria-label={`${label}: one frame on`}>frame ▶</button>
        </div>
      )}
    </div>
  );
}

export function ZoomImage({ src, label, zoomed, onToggle }: { src: string; label: string; zoomed: boolean; onToggle: () => void }) {
  return (
    <button type="button" className={`image-button${zoomed ? " zoomed" : ""}`} onClick={onToggle} aria-pressed={zoomed} aria-label={`${label}: ${zoomed ? "zoom out" : "zoom in"}`}>
      <img src={src} alt={label} />
    </button>
  );
}
