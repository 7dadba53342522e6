/**
 * A question before an action that changes what runs (promote, roll back, revoke): a modal
 * <dialog> naming what will happen, with what it changes shown inside, and Cancel focused first.
 * Escape and Cancel close it without acting.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

export interface ConfirmProps {
  title: string;
  confirmLabel: string;
  danger?: boolean;
  busy?: boolean;
  onConfirm: () => void;
  onCancel: () => void;
  children?: ComponentChildren;
}

export function ConfirmDialog({ title, confirmLabel, danger, busy, onConfirm, onCancel, children }: ConfirmProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (!d.open) d.showModal();
    cancel.current?.focus();
    const onClose = () => onCancel();
    d.addEventListener('cancel', onClose);
    return () => {
      d.removeEventListener('cancel', onClose);
      if (d.open) d.close();
    };
  }, []);
  return (
    <dialog ref={ref} class="confirm" aria-labelledby="confirm-title" data-testid="confirm">
      <h2 id="confirm-title">{title}</h2>
      <div class="confirm-body">{children}</div>
      <div class="row">
        <button type="button" class="secondary" ref={cancel} onClick={onCancel}>
          Cancel
        </button>
        <button type="button" class={danger ? 'danger' : ''} disabled={busy} onClick={onConfirm}>
          {confirmLabel}
        </button>
      </div>
    </dialog>
  );
}
