import NIOCore
import NIOHTTPTypes

/// Closes a connection whose client has taken none of what PanList is sending for `timeout` (nginx's
/// `send_timeout`): a download nobody reads must not hold its slot (ZIP downloads, archive members), its
/// upstream connection or its buffers for ever. Only writes waiting on the client count, so a long upload
/// (nothing sent meanwhile) and an idle keep-alive connection are not affected.
final class SendTimeoutHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let timeout: TimeAmount
    /// Writes handed to the socket and not yet taken by it.
    private var waiting = 0
    /// When the socket last took a write (or, with none waiting before, when the first began to wait).
    private var progress = NIODeadline.now()
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount) { self.timeout = timeout }

    /// A write completes only when all of it is in the socket: a big body part is handed on in pieces of
    /// this size, so that a client reading slowly but steadily shows progress.
    static let piece = 64 * 1024

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .body(var bytes) = unwrapOutboundIn(data), bytes.readableBytes > Self.piece {
            while bytes.readableBytes > Self.piece, let part = bytes.readSlice(length: Self.piece) {
                pass(context, wrapOutboundOut(.body(part)), promise: nil)
            }
            pass(context, wrapOutboundOut(.body(bytes)), promise: promise)
        } else {
            pass(context, data, promise: promise)
        }
    }

    private func pass(_ context: ChannelHandlerContext, _ data: NIOAny, promise: EventLoopPromise<Void>?) {
        let done = promise ?? context.eventLoop.makePromise(of: Void.self)
        if waiting == 0 { progress = .now() }
        waiting += 1
        done.futureResult.assumeIsolated().whenComplete { _ in
            self.waiting -= 1
            self.progress = .now()
        }
        context.write(data, promise: done)
        if timer == nil { arm(context, at: progress + timeout) }
    }

    private func arm(_ context: ChannelHandlerContext, at deadline: NIODeadline) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.timer = nil
            guard self.waiting > 0 else { return }
            let due = self.progress + self.timeout
            if due <= .now() { context.close(promise: nil) } else { self.arm(context, at: due) }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }
}
